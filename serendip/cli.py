"""The ``serendip`` command: a thin dispatcher onto each layer's typed config and entry function.

Each command maps to ``(module, Config dataclass, function)``. ``tyro`` turns the dataclass into
flags, so the CLI, ``python -m <layer>`` and the Serve YAML all share one definition of every
option. Modules are imported lazily so that ``serendip simulate`` never pays for Ray or torch.
"""

from __future__ import annotations

import importlib
import os
import sys

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


def serve(config) -> int:
    """``serendip serve``: start the local Ray with its token auth on (a 0600 token in the state dir,
    ``training.local_ray.init_ray``), then the app (``serving.app.serve_main`` joins that Ray).

    Here and not in ``serving``, which may not import ``training`` (DESIGN.md); ``RAY_ADDRESS`` joins a
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
    config = tyro.cli(config_cls, args=rest, prog="serendip " + " ".join(words))
    func_module, _, func_name = func_name.rpartition(".")
    return getattr(importlib.import_module(func_module) if func_module else module, func_name)(config)


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
