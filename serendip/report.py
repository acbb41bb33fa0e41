"""The demo's ``report.md``: training curves, the sweep, the A/B test in the shop, cold start, latency,
and the second generation: the off-policy check on the served log, the retrained model, both
generations' clicks.

The A/B test has three arms, so it answers two questions: the value of learning (``greedy``, which
learns and never explores, against ``static``, the model alone) and the value of exploration (the
sweep's exploring pick against ``greedy``). Clicks are the simulator's draws; "expected clicks" and
regret are its exact probabilities, so the arms are compared both as a shop would see them and as
the truth has them. Lifts and CTR intervals come from ``recsys.metrics.ab``, the statistics
``/experiments`` uses: a BCa bootstrap over visits for a lift, Wilson intervals for a CTR.
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

from recsys.metrics.ab import lift_interval, wilson_interval  # noqa: E402
from serendip.demo import ARMS, GREEDY, PICKED, STATIC  # noqa: E402
from serendip.report_page import write_page  # noqa: E402
from tuning.report import markdown_table  # noqa: E402
from tuning.space import BASELINES  # noqa: E402

LIFTS = {"learning": (GREEDY, STATIC), "exploration": (PICKED, GREEDY)}
"""Each lift the report gives: (treatment arm, control arm)."""


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
    """serendip.demo.Traffic of each generation, in order."""
    experiments: dict
    """The JSON of GET /experiments at the end of the traffic (both generations)."""
    phases: dict
    """Phase name -> {"wall_s", "cpu_s"} of the phases run before the report (``Progress.phases``)."""
    world: Any
    """The simulator world after the traffic (for the curl examples)."""
    k: int = 10
    """Slate size of every visit."""
    picked: Any = None
    """The ``recsys.policies.Arm`` served as ``picked`` (default: the sweep's pick)."""
    update: Any = None
    """serendip.generations.Update: what happened between the generations (None: one generation)."""


def mean_interval(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and its 95% t-interval."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return float(x.mean()) if len(x) else float("nan"), float("nan"), float("nan")
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    return float(x.mean()), float(low), float(high)


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
    return _in_arm_order(pd.DataFrame(rows))


def new_item_table(visits: pd.DataFrame) -> pd.DataFrame:
    """Per arm: impressions of injected products, their clicks, CTR (Wilson) and expected CTR."""
    rows = []
    for arm, v in visits.groupby("arm", sort=False):
        shown, clicks = int(v["new_shown"].sum()), int(v["new_clicks"].sum())
        low, high = wilson_interval(clicks, shown)
        rows.append({"arm": arm, "new-item impressions": shown, "clicks": clicks,
                     "CTR": clicks / shown if shown else float("nan"), "95% CI": f"[{low:.4f}, {high:.4f}]",
                     "expected CTR (truth)": v["new_expected"].sum() / shown if shown else float("nan")})
    return _in_arm_order(pd.DataFrame(rows))


def generations(traffic) -> list:
    """The demo's traffic as a list with one Traffic per generation (a lone Traffic is generation 0)."""
    return list(traffic) if isinstance(traffic, list | tuple) else [traffic]


def latency_table(traffic) -> pd.DataFrame:
    """Client-side latency percentiles of /recommend and /feedback (milliseconds), every generation."""
    rows = []
    for name, attr in (("POST /recommend", "recommend_ms"), ("POST /feedback", "feedback_ms")):
        ms = [x for t in generations(traffic) for x in getattr(t, attr)]
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


def _in_arm_order(table: pd.DataFrame) -> pd.DataFrame:
    """Rows in ``ARMS`` order (the greedy control first), any other arm after them."""
    rank = {arm: i for i, arm in enumerate(ARMS)}
    return table.sort_values("arm", key=lambda s: s.map(lambda a: rank.get(a, len(ARMS))), kind="stable")


def lift_of(visits: pd.DataFrame, treatment: str, control: str, column: str, seed: int) -> dict:
    """The lift of arm ``treatment`` over arm ``control`` on the per-visit ``column``, with its 95% interval."""
    t = visits.loc[visits["arm"] == treatment, column].to_numpy(dtype=float)
    c = visits.loc[visits["arm"] == control, column].to_numpy(dtype=float)
    lift, low, high = lift_interval(t, c, seed)
    return {"treatment": treatment, "control": control, "lift": lift, "low": low, "high": high,
            "treatment_per_visit": float(t.mean()) if len(t) else float("nan"),
            "control_per_visit": float(c.mean()) if len(c) else float("nan"), "visits": [len(t), len(c)]}


def lifts(visits: pd.DataFrame, seed: int, injected_round: int) -> dict[str, dict]:
    """Both lifts (``LIFTS``): on clicks per visit, and (``_new_products``) on clicks of the products
    added mid-run per visit, over the visits from the round they were added (none added: NaNs)."""
    later = visits[visits["round"] >= injected_round] if injected_round >= 0 else visits.iloc[:0]
    out = {}
    for name, (treatment, control) in LIFTS.items():
        out[f"lift_{name}"] = lift_of(visits, treatment, control, "clicks", seed)
        out[f"lift_{name}_new_products"] = lift_of(later, treatment, control, "new_clicks", seed)
    return out


def _lift_words(row: dict) -> str:
    """'0.612 vs 0.455 per visit, lift +34.5% (95% bootstrap CI [+20.1%, +49.0%])'."""
    return (f"{row['treatment_per_visit']:.3f} vs {row['control_per_visit']:.3f} per visit, lift {row['lift']:+.1%} "
            f"(95% bootstrap CI [{row['low']:+.1%}, {row['high']:+.1%}])")


def _settled(row: dict) -> str:
    """Whether the interval decides the sign of the lift."""
    if row["low"] > 0 or row["high"] < 0:
        return "the interval excludes 0"
    return "the interval includes 0 (more traffic would settle it)"


def verdict(numbers: dict[str, dict]) -> tuple[bool, str]:
    """Does the picked (exploring) arm beat greedy on clicks? The sentence gives both lifts (``lifts``)."""
    learning, exploration = numbers["lift_learning"], numbers["lift_exploration"]
    if min(*learning["visits"], *exploration["visits"]) < 2:
        return False, "not enough visits in every arm to compare"
    won = bool(exploration["treatment_per_visit"] > exploration["control_per_visit"])
    learned = learning["treatment_per_visit"] > learning["control_per_visit"]
    return won, (f"learning: greedy {'beats' if learned else 'does not beat'} the static model on clicks, "
                 f"{_lift_words(learning)}, {_settled(learning)}; exploration: the picked policy "
                 f"{'beats' if won else 'does not beat'} greedy, {_lift_words(exploration)}, {_settled(exploration)}")


def lift_table(numbers: dict[str, dict]) -> pd.DataFrame:
    """One row per lift: overall and on the new products, each with its interval."""
    def cell(row):
        return f"{row['lift']:+.1%} [{row['low']:+.1%}, {row['high']:+.1%}]"

    return pd.DataFrame([{"lift": f"{name} (`{t}` over `{c}`)", "clicks per visit (95% CI)": cell(numbers[f"lift_{name}"]),
                          "new-product clicks per visit, from their arrival (95% CI)":
                              cell(numbers[f"lift_{name}_new_products"])}
                         for name, (t, c) in LIFTS.items()])


def arm_summary(visits: pd.DataFrame, policies: dict[str, str]) -> dict[str, dict]:
    """summary.json's per-arm figures: the policy, visits, clicks per visit with its interval, the truth."""
    out = {}
    for arm in [a for a in ARMS if a in set(visits["arm"])]:
        v = visits[visits["arm"] == arm]
        mean, low, high = mean_interval(v["clicks"].to_numpy())
        out[arm] = {"policy": policies.get(arm, arm), "visits": len(v), "clicks_per_visit": mean, "low": low,
                    "high": high, "expected_clicks_per_visit": float(v["expected"].mean()),
                    "regret_per_visit": float(v["regret"].mean()),
                    "new_product_clicks": int(v["new_clicks"].sum())}
    return out


def sweep_rows(table: pd.DataFrame, top: int = 8) -> pd.DataFrame:
    """The sweep's best finished trials, plus the baselines (static, greedy) wherever they ranked."""
    ok = table[table["status"] == "ok"]
    shown = ok[(np.arange(len(ok)) < top) | ok["policy"].isin(BASELINES).to_numpy()]
    return shown[[c for c in ("arm", "regret", "reward", "reward_low", "reward_high") if c in shown]]


def _strict_json(value):
    """NaN -> None, recursively, so summary.json is strict JSON."""
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict_json(v) for v in value]
    return None if isinstance(value, float) and not np.isfinite(value) else value


def write_report(o: DemoOutcome) -> tuple[Path, bool, str]:
    """Write run/report.md (plots in run/plots, visits in run/visits.parquet) and the same as run/index.html
    with the plots inline; return report.md's path and the verdict."""
    traffic = generations(o.traffic)
    every = pd.DataFrame([v for t in traffic for v in t.visits])
    every["generation"] = every["generation"] if "generation" in every else 0
    every.to_parquet(o.run / "visits.parquet")
    visits = every[every["generation"] == 0]  # the A/B sections: generation 0, model 0
    first = traffic[0]
    numbers = lifts(visits, o.config.seed, first.injected_round)
    won, sentence = verdict(numbers)
    pick, served_pick = o.swept.pick, o.picked or o.swept.pick
    policies = {STATIC: "static", GREEDY: "greedy", PICKED: served_pick.label()}
    plots = {"training": plot_training(o.trained.metrics, o.run / "plots" / "training.png"),
             "regret": plot_regret(visits, o.run / "plots" / "regret.png")}
    sweep_plot = Path(o.swept.report).parent / "plots" / "reward_vs_rate.png"
    epochs = pd.DataFrame(o.trained.metrics)
    keep = [c for c in ("epoch", "step", "loss", "val_ndcg10", "val_recall10", "val_auc", "samples_per_s") if c in epochs]
    served = pd.DataFrame(o.experiments["arms"]).drop(columns=["is_control"], errors="ignore")
    if "ctr_ci95" in served:
        served["ctr_ci95"] = [f"[{low:.4f}, {high:.4f}]" for low, high in served["ctr_ci95"]]
    total = sum(p["wall_s"] for p in o.phases.values())
    failures = sum(t.failures for t in traffic)
    errors: dict[str, int] = {}
    for t in traffic:
        for why, n in t.errors.items():
            errors[why] = errors.get(why, 0) + n
    pick_line = f"`{pick.label()}` (regret {o.swept.pick_value:.4g} in replay)"
    if served_pick != pick:
        pick_line += (f"; it does not explore, so the A/B serves the best exploring trial, `{served_pick.label()}` "
                      f"(regret {o.swept.explorer_value:.4g})")
    lines = [
        f"# Serendip demo ({'quick' if o.config.quick else 'full'})", "",
        f"- **Verdict**: {sentence}.",
        f"- **Shop**: {o.budget.users} shoppers, {o.budget.items} products (+{o.budget.inject} added mid-run), "
        f"{o.budget.days} days of logged history.",
        f"- **Model**: {o.config.base or 'MiniLM-L6'} fine-tuned with Ray Train on {o.config.workers} workers, "
        f"stopped by: {o.trained.stopped or 'epochs'}; model at `{o.trained.model_dir}`.",
        f"- **Sweep pick**: {pick_line}; [sweep report]({_rel(o.swept.report, o.run)}).",
        f"- **A/B over HTTP**: {len(traffic)} generation(s) of {o.budget.rounds} rounds of {o.budget.visits_per_round} "
        f"visits ({len(every)} in all), each ranking {o.k} of {o.budget.candidates} candidates; sections 3-5 are "
        f"generation 0 (model 0); {failures} requests failed after retries"
        + (f" (failed tries: {json.dumps(errors)})" if errors else "") + ".",
        "- **Time per phase** (wall s / CPU s of the demo's process and the Ray processes it started, a lower "
        "bound, `recsys.cpu_time`): "
        + ", ".join(f"{name} {p['wall_s']:g}/{p['cpu_s']:g}" for name, p in o.phases.items())
        + f"; total {total:.0f} s wall before the report.", "",
        "## 1. Fine-tuning (Ray Train)", "", markdown_table(epochs[keep]) if keep else "_(no metrics)_", "",
        f"![training curves]({_rel(plots['training'], o.run)})", "",
        "## 2. Exploration sweep (Ray Tune)", "",
        "Each trial replays one policy in the simulated shop, on the trained model's scores and features, over "
        "several seeds with the traffic one A/B arm gets; lower regret is better. `static` (the model alone) and "
        "`greedy` (learns, never explores) run once each.", "",
        markdown_table(sweep_rows(o.swept.table)), "",
        f"![reward against exploration rate]({_rel(sweep_plot, o.run)})", "",
        "## 3. A/B test in the shop (static, greedy control, the pick)", "",
        f"Three arms split the shoppers by a hash of their id: `{STATIC}` ranks by the model alone and never learns, "
        f"`{GREEDY}` (the control) learns each product's appeal and never explores, `{PICKED}` is "
        f"`{served_pick.label()}`. Per visit, from the simulator (clicks drawn from its exact probabilities):", "",
        markdown_table(arm_table(visits, o.k)), "",
        "The value of learning and the value of exploration, as relative lifts of clicks per visit with 95% BCa "
        "bootstrap intervals over visits:", "",
        markdown_table(lift_table(numbers)), "",
        "What the server reports at the end (`GET /experiments`, both generations: a slate counts as clicked when any item got a click; "
        "lifts against the first arm, greedy):", "",
        markdown_table(served), "",
        "## 4. Regret over time", "", f"![regret over time]({_rel(plots['regret'], o.run)})", "",
        "## 5. New products (cold start)", "",
        f"{o.budget.inject} products were added through `PUT /items` a third of the way in; the model embedded "
        "them at once (their lifts are in section 3).", "", markdown_table(new_item_table(visits)), "",
        "## 6. Serving latency", "",
        f"Client-side, {o.budget.visits_per_round} concurrent shoppers, loopback HTTP, this machine:", "",
        markdown_table(latency_table(traffic)), "",
        "## 7. Try the API", "",
        "Run `serendip demo --keep-serving` (or `serendip serve --model MODEL --data SHOP`) and then:", "",
        "```bash", *curl_lines(o.port, o.world, first.first_new_item), "```", "",
    ]
    loop = {}
    if o.update is not None:
        from serendip.generation_report import clicks_by_generation, section, summary_keys

        by_gen = clicks_by_generation(every, ARMS)
        lines += section(o.update, by_gen, policies, o.k, o.budget.candidates, markdown_table)
        loop = summary_keys(o.update, by_gen, o.budget.candidates)
    path = o.run / "report.md"
    path.write_text("\n".join(lines))
    write_page(path)
    (o.run / "summary.json").write_text(json.dumps(_strict_json({
        "picked": served_pick.label(), "sweep_pick": pick.label(), "picked_beats_greedy": won,
        "arms": arm_summary(visits, policies), **numbers, "visits": len(every), "failures": failures,
        "errors": errors, "phases": o.phases, **loop, "report": str(path)}), indent=2))
    return path, won, sentence


def _rel(path, base: Path) -> str:
    """``path`` relative to ``base`` when inside it (markdown links that survive moving the run folder)."""
    path = Path(path).resolve()
    try:
        return path.relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
