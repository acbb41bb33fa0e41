"""The demo's ``report.md``: training curves, the sweep, the A/B test in the shop, cold start, latency.

Clicks are the simulator's draws; "expected clicks" and regret are its exact probabilities, so the
arms are compared both as a shop would see them and as the truth has them. The lift's interval is
a bootstrap over visits (``scipy.stats.bootstrap``); CTR intervals are Wilson intervals, the same
function ``/experiments`` uses.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from serving.experiments import wilson_interval  # noqa: E402
from tuning.report import markdown_table  # noqa: E402

CONTROL = "control"
PICKED = "picked"


@dataclass
class DemoOutcome:
    """Everything the demo measured, handed from ``serendip.demo`` to the report."""

    run: Path
    config: Any
    budget: Any
    trained: Any
    """training.trainer.TrainResult."""
    swept: Any
    """tuning.exploration_report.ExplorationOutcome."""
    port: int
    traffic: Any
    """serendip.demo.Traffic."""
    experiments: dict
    """The JSON of GET /experiments at the end of the traffic."""
    phases: dict
    """Phase name -> {"wall_s", "cpu_s"} of the phases run before the report (``Progress.phases``)."""
    world: Any
    """The simulator world after the traffic (for the curl examples)."""
    k: int = 10
    """Slate size of every visit."""


def mean_interval(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and its 95% t-interval."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return float(x.mean()) if len(x) else float("nan"), float("nan"), float("nan")
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    return float(x.mean()), float(low), float(high)


def lift_interval(picked: np.ndarray, control: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """Relative lift of mean(picked) over mean(control) with a 95% bootstrap interval (BCa, over visits)."""
    def lift(a, b, axis=-1):
        return a.mean(axis=axis) / b.mean(axis=axis) - 1.0

    point = float(lift(np.asarray(picked, float), np.asarray(control, float)))
    ci = stats.bootstrap((np.asarray(picked, float), np.asarray(control, float)), lift, n_resamples=2000,
                         vectorized=True, random_state=seed).confidence_interval
    return point, float(ci.low), float(ci.high)


def arm_table(visits: pd.DataFrame, k: int) -> pd.DataFrame:
    """Per arm: visits, clicks, clicks per visit with its interval, per-item CTR (Wilson), truth, regret."""
    rows = []
    for arm, v in visits.groupby("arm", sort=False):
        mean, low, high = mean_interval(v["clicks"].to_numpy())
        shown = len(v) * k
        ctr_low, ctr_high = wilson_interval(int(v["clicks"].sum()), shown)
        rows.append({"arm": arm, "visits": len(v), "clicks": int(v["clicks"].sum()),
                     "clicks/visit": mean, "95% CI": f"[{low:.3f}, {high:.3f}]",
                     "item CTR": v["clicks"].sum() / shown, "item CTR 95% CI": f"[{ctr_low:.4f}, {ctr_high:.4f}]",
                     "expected clicks/visit (truth)": v["expected"].mean(), "regret/visit": v["regret"].mean()})
    return pd.DataFrame(rows).sort_values("arm", key=lambda s: s != CONTROL, kind="stable")


def new_item_table(visits: pd.DataFrame) -> pd.DataFrame:
    """Per arm: impressions of injected products, their clicks, CTR (Wilson) and expected CTR."""
    rows = []
    for arm, v in visits.groupby("arm", sort=False):
        shown, clicks = int(v["new_shown"].sum()), int(v["new_clicks"].sum())
        low, high = wilson_interval(clicks, shown)
        rows.append({"arm": arm, "new-item impressions": shown, "clicks": clicks,
                     "CTR": clicks / shown if shown else float("nan"), "95% CI": f"[{low:.4f}, {high:.4f}]",
                     "expected CTR (truth)": v["new_expected"].sum() / shown if shown else float("nan")})
    return pd.DataFrame(rows).sort_values("arm", key=lambda s: s != CONTROL, kind="stable")


def latency_table(traffic) -> pd.DataFrame:
    """Client-side latency percentiles of /recommend and /feedback (milliseconds)."""
    rows = []
    for name, ms in (("POST /recommend", traffic.recommend_ms), ("POST /feedback", traffic.feedback_ms)):
        if ms:
            p50, p90, p99 = np.percentile(ms, [50, 90, 99])
            rows.append({"endpoint": name, "requests": len(ms), "p50 ms": p50, "p90 ms": p90, "p99 ms": p99,
                         "max ms": max(ms)})
    return pd.DataFrame(rows)


def plot_training(metrics: list[dict], path: Path) -> Path:
    """Loss and validation NDCG@10 per epoch of the fine-tuning run."""
    history = pd.DataFrame(metrics)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, column in zip(axes, ("loss", "val_ndcg10"), strict=True):
        if column in history:
            ax.plot(history["epoch"] + 1, history[column], marker="o")
        ax.set_xlabel("epoch")
        ax.set_ylabel(column)
        ax.grid(alpha=0.3)
    fig.suptitle("Fine-tuning (Ray Train)")
    return _save(fig, path)


def plot_regret(visits: pd.DataFrame, path: Path) -> Path:
    """Cumulative regret against the oracle per arm, over that arm's visits."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for arm, v in visits.groupby("arm", sort=True):
        ax.plot(np.arange(1, len(v) + 1), v["regret"].cumsum().to_numpy(), label=arm)
    ax.set_xlabel("visits of the arm")
    ax.set_ylabel("cumulative regret (expected clicks lost to the oracle)")
    ax.set_title("Regret over time in the A/B test")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curl_lines(port: int, world, first_new_item: int) -> list[str]:
    """Commands to try the API by hand while the server runs (``--keep-serving``)."""
    url = f"http://127.0.0.1:{port}"
    history = [int(i) for i in world.item_ids[:3]]
    item = int(world.item_ids[-1]) + 1
    post = "curl -s -X POST -H 'content-type: application/json'"
    new_item = {"items": [{"item_id": item, "title": "Northpeak waterproof trail running shoe, men's, grey",
                           "category": "shoes", "brand": "Northpeak", "price": 89.0,
                           "attributes": {"colour": "grey"}}]}
    return [
        f"curl -s {url}/healthz",
        f"{post} {url}/recommend -d " + shlex.quote(json.dumps({"user_id": 7, "history": history, "k": 5})),
        f"{post} {url}/recommend -d " + shlex.quote(json.dumps({"user_id": 7, "query": "waterproof jacket", "k": 5})),
        f"{post} {url}/feedback -d " + shlex.quote('{"impression_id": "<impression_id from /recommend>", '
                                                   f'"item_id": {history[0]}, "event": "click"}}'),
        f"curl -s -X PUT -H 'content-type: application/json' {url}/items -d " + shlex.quote(json.dumps(new_item)),
        f"curl -s {url}/experiments",
        f"curl -s {url}/stats",
        f"# OpenAPI: {url}/docs   (with SERENDIP_API_TOKEN set, add -H \"authorization: Bearer $SERENDIP_API_TOKEN\")",
    ]


def verdict(visits: pd.DataFrame, seed: int) -> tuple[bool, str, dict]:
    """Does the picked arm beat the greedy control on clicks? The sentence and the numbers behind it."""
    picked = visits.loc[visits["arm"] == PICKED, "clicks"].to_numpy()
    control = visits.loc[visits["arm"] == CONTROL, "clicks"].to_numpy()
    if len(picked) < 2 or len(control) < 2:
        return False, "not enough visits in both arms to compare", {}
    lift, low, high = lift_interval(picked, control, seed)
    won = bool(picked.mean() > control.mean())
    sure = "the interval excludes 0" if low > 0 else "the interval still includes 0 (more traffic would settle it)"
    text = (f"the picked policy {'beats' if won else 'does not beat'} the greedy control on clicks: "
            f"{picked.mean():.3f} vs {control.mean():.3f} clicks per visit, lift {lift:+.1%} "
            f"(95% bootstrap CI [{low:+.1%}, {high:+.1%}]); {sure}")
    return won, text, {"lift": lift, "lift_ci95": [low, high], "picked_clicks_per_visit": float(picked.mean()),
                       "control_clicks_per_visit": float(control.mean())}


def write_report(o: DemoOutcome) -> tuple[Path, bool, str]:
    """Write run/report.md (plots in run/plots, visits in run/visits.parquet); return its path and the verdict."""
    visits = pd.DataFrame(o.traffic.visits)
    visits.to_parquet(o.run / "visits.parquet")
    won, sentence, numbers = verdict(visits, o.config.seed)
    pick = o.swept.pick
    plots = {"training": plot_training(o.trained.metrics, o.run / "plots" / "training.png"),
             "regret": plot_regret(visits, o.run / "plots" / "regret.png")}
    sweep_plot = Path(o.swept.report).parent / "plots" / "reward_vs_rate.png"
    epochs = pd.DataFrame(o.trained.metrics)
    keep = [c for c in ("epoch", "step", "loss", "val_ndcg10", "val_recall10", "val_auc", "samples_per_s") if c in epochs]
    ranked = o.swept.table[o.swept.table["status"] == "ok"]
    ranked = ranked[[c for c in ("arm", "regret", "reward", "reward_low", "reward_high") if c in ranked]].head(8)
    served = pd.DataFrame(o.experiments["arms"]).drop(columns=["is_control"], errors="ignore")
    if "ctr_ci95" in served:
        served["ctr_ci95"] = [f"[{low:.4f}, {high:.4f}]" for low, high in served["ctr_ci95"]]
    total = sum(p["wall_s"] for p in o.phases.values())
    lines = [
        f"# Serendip demo ({'quick' if o.config.quick else 'full'})", "",
        f"- **Verdict**: {sentence}.",
        f"- **Shop**: {o.budget.users} shoppers, {o.budget.items} products (+{o.budget.inject} added mid-run), "
        f"{o.budget.days} days of logged history.",
        f"- **Model**: {o.config.base or 'MiniLM-L6'} fine-tuned with Ray Train on {o.config.workers} workers, "
        f"stopped by: {o.trained.stopped or 'epochs'}; model at `{o.trained.model_dir}`.",
        f"- **Sweep pick**: `{pick.label()}` (regret {o.swept.pick_value:.4g} in replay); "
        f"[sweep report]({_rel(o.swept.report, o.run)}).",
        f"- **A/B over HTTP**: {len(visits)} visits in {o.budget.rounds} rounds of {o.budget.visits_per_round}, "
        f"each ranking {o.k} of {o.budget.candidates} candidates; {o.traffic.failures} requests failed after retries"
        + (f" (failed tries: {json.dumps(o.traffic.errors)})" if o.traffic.errors else "") + ".",
        "- **Time per phase** (wall s / CPU s of the demo's processes): "
        + ", ".join(f"{name} {p['wall_s']:g}/{p['cpu_s']:g}" for name, p in o.phases.items())
        + f"; total {total:.0f} s wall before the report.", "",
        "## 1. Fine-tuning (Ray Train)", "", markdown_table(epochs[keep]) if keep else "_(no metrics)_", "",
        f"![training curves]({_rel(plots['training'], o.run)})", "",
        "## 2. Exploration sweep (Ray Tune)", "",
        "Each trial replays one policy in the simulated shop over several seeds; lower regret is better.", "",
        markdown_table(ranked), "",
        f"![reward against exploration rate]({_rel(sweep_plot, o.run)})", "",
        "## 3. A/B test in the shop (greedy control vs the pick)", "",
        "Per visit, from the simulator (clicks drawn from its exact probabilities):", "",
        markdown_table(arm_table(visits, o.k)), "",
        f"Lift of `{PICKED}` over `{CONTROL}` on clicks per visit: {numbers.get('lift', float('nan')):+.1%}, "
        f"95% bootstrap CI [{numbers.get('lift_ci95', [float('nan')] * 2)[0]:+.1%}, "
        f"{numbers.get('lift_ci95', [float('nan')] * 2)[1]:+.1%}].", "",
        "What the server reports (`GET /experiments`: a slate counts as clicked when any item got a click):", "",
        markdown_table(served), "",
        "## 4. Regret over time", "", f"![regret over time]({_rel(plots['regret'], o.run)})", "",
        "## 5. New products (cold start)", "",
        f"{o.budget.inject} products were added through `PUT /items` a third of the way in; the model embedded "
        "them at once.", "", markdown_table(new_item_table(visits)), "",
        "## 6. Serving latency", "",
        f"Client-side, {o.budget.visits_per_round} concurrent shoppers, loopback HTTP, this machine:", "",
        markdown_table(latency_table(o.traffic)), "",
        "## 7. Try the API", "",
        "Run `serendip demo --keep-serving` (or `serendip serve --model MODEL --data SHOP`) and then:", "",
        "```bash", *curl_lines(o.port, o.world, o.traffic.first_new_item), "```", "",
    ]
    path = o.run / "report.md"
    path.write_text("\n".join(lines))
    (o.run / "summary.json").write_text(json.dumps({
        "picked": pick.label(), "picked_beats_control": bool(won), **numbers, "visits": len(visits),
        "failures": o.traffic.failures, "errors": o.traffic.errors, "phases": o.phases, "report": str(path)}, indent=2))
    return path, won, sentence


def _rel(path, base: Path) -> str:
    """``path`` relative to ``base`` when inside it (markdown links that survive moving the run folder)."""
    path = Path(path).resolve()
    try:
        return path.relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
