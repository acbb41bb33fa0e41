"""The ``serendip`` command: a thin dispatcher onto each layer's typed config and entry function.

Each command maps to ``(module, Config dataclass, function)``. ``tyro`` turns the dataclass into
flags, so the CLI, ``python -m <layer>`` and the Serve YAML all share one definition of every
option. Modules are imported lazily so that ``serendip simulate`` never pays for Ray or torch.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

# command words -> "module:ConfigClass:function". The function takes the parsed config; it lives in
# the config's module unless named with its module ("pkg.module.function").
COMMANDS: dict[tuple[str, ...], str] = {
    ("simulate",): "recsys.simulator.cli:SimulateConfig:simulate",
    ("summarize",): "recsys.data.summary:SummarizeConfig:summarize",
    ("evaluate",): "recsys.ope.evaluate:EvaluateConfig:evaluate",
    ("serve",): "serving.app:ServeConfig:serendip.cli.serve",
    ("deploy",): "serving.app:DeployConfig:deploy_model",
    ("train",): "training.trainer:TrainConfig:train",
    ("retrain",): "training.trainer:RetrainConfig:retrain",
    ("tune", "hparams"): "tuning.hparams:HparamSweepConfig:tune_hparams",
    ("tune", "exploration"): "tuning.exploration:ExplorationSweepConfig:tune_exploration",
    ("submit",): "cluster.submit:SubmitConfig:submit",
    ("jobs", "list"): "cluster.jobs:JobsListConfig:list_jobs",
    ("jobs", "logs"): "cluster.jobs:JobsLogsConfig:job_logs",
    ("jobs", "stop"): "cluster.jobs:JobsStopConfig:stop_job",
    ("manifests",): "cluster.manifests:ManifestsConfig:manifests",
    ("demo",): "serendip.demo:DemoConfig:demo",
}

USAGE = "usage: serendip {" + ",".join(" ".join(c) for c in COMMANDS) + "} [--help]"

QUIET = {("train",): ("[train] ", "{"), ("retrain",): ("[train] ", "{"), ("tune", "hparams"): ("[tune] ", "{"),
         ("tune", "exploration"): ("[tune] ", "{"),
         ("serve",): ("serendip serve", "Serendip is serving", "shutting down")}
"""Commands whose terminal shows only their own lines and a progress bar (``serendip.console``), with the
prefixes of the lines they print for a person; what Ray and the libraries print goes to the run's
output.log. ``--verbose`` shows it in the terminal too."""
VERBOSE = "--verbose"


def serve(config) -> int:
    """``serendip serve``: start the local Ray with its token auth on (a 0600 token in the state dir,
    ``training.local_ray.init_ray``), then the app (``serving.app.serve_main`` joins that Ray).

    Here and not in ``serving``, which may not import ``training`` (imports point down); ``RAY_ADDRESS`` joins a
    cluster instead.
    """
    from serving import ingress_mode
    from serving.app import serve_main
    from serving.config import check_exposure
    from training.local_ray import init_ray

    config.check_paths()  # refused before Ray starts, not after
    check_exposure(config, dict(os.environ))
    with ingress_mode.starting_ray(config.ingress_mode):  # a joined cluster keeps its own mode
        init_ray(state_dir=config.state_dir, log_to_driver=False, _metrics_export_port=config.metrics_port)
    return serve_main(config)


def resolve(argv: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """Find the longest command prefix of argv; return it and the remaining arguments."""
    for n in (2, 1):
        words = tuple(argv[:n])
        if words in COMMANDS:
            return words, argv[n:]
    raise SystemExit(f"{USAGE}\nunknown command: {' '.join(argv[:2]) or '(none)'}")


def run(words: tuple[str, ...], rest: list[str]) -> object:
    """Parse ``rest`` into the command's config dataclass and call its function."""
    import tyro

    module_name, config_name, func_name = COMMANDS[words].split(":")
    module = importlib.import_module(module_name)
    config_cls = getattr(module, config_name)
    verbose = words in QUIET and VERBOSE in rest
    description = (config_cls.__doc__ or "").rstrip() + (f"\n\n{VERBOSE}: also show what Ray and the libraries print "
                                                "(always in the run's output.log)." if words in QUIET else "")
    config = tyro.cli(config_cls, args=[a for a in rest if not (words in QUIET and a == VERBOSE)],
                      prog="serendip " + " ".join(words), description=description)
    func_module, _, func_name = func_name.rpartition(".")
    func = getattr(importlib.import_module(func_module) if func_module else module, func_name)
    return quietly(words, config, func, verbose) if words in QUIET else func(config)


def run_folder(words: tuple[str, ...], config) -> Path:
    """The folder of a command's run, which gets its output.log: the Ray Train run, the sweep's --out, the
    served state dir."""
    if words == ("serve",):
        return Path(config.state_dir)
    if words[0] == "tune":
        return Path(config.out)
    train = config.train_config() if words == ("retrain",) else config
    return Path("runs") / train.run_name if "://" in train.storage else Path(train.storage) / train.run_name


def quietly(words: tuple[str, ...], config, func, verbose: bool) -> object:
    """``func(config)`` inside a console: its lines and a bar in the terminal, the rest in the run's output.log."""
    from serendip.console import Console, SweepBar, TrainingBar

    log = run_folder(words, config) / "output.log"
    with Console(log, verbose=verbose, passthrough=QUIET[words]) as console:
        console.say(f"serendip {' '.join(words)}: what Ray and the libraries print goes to {log}"
                    + ("" if verbose else f" ({VERBOSE} shows it here)"))
        bars = {"train": TrainingBar, "retrain": TrainingBar, "tune": SweepBar}
        readers = [bars[words[0]](console, "trials" if words[0] == "tune" else "train")] if words[0] in bars else []
        ray_was_up = _ray_is_up()
        try:
            with console.following(*readers):
                return func(config)
        except BaseException:
            console.say(f"serendip {' '.join(words)} failed; what Ray and the libraries printed is in {log}")
            raise
        finally:
            if not ray_was_up and _ray_is_up():  # Ray streams its workers' lines into the console until it stops
                import ray

                ray.shutdown()


def _ray_is_up() -> bool:
    """Whether this process is connected to Ray (without importing Ray when it is not loaded)."""
    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``serendip`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    words, rest = resolve(argv)
    result = run(words, rest)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
