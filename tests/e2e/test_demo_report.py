"""The demo's pure pieces (no Ray, seconds): its config, the A/B statistics and the report's tables."""

from __future__ import annotations

import json
import re
import shlex
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from recsys.policies import Arm
from serendip.demo import ARM_WEIGHTS, FULL, PICKED_SHARE, QUICK, DemoConfig, Traffic, ab_arms, served_pick
from serendip.report import arm_table, curl_lines, latency_table, lift_table, lifts, new_item_table, verdict
from serving.config import ServeConfig


def visits(arm: str, clicks: list[int], new_shown: int = 0, new_clicks: list[int] | None = None,
           round: int = 0) -> list[dict]:
    new_clicks = [min(c, new_shown) for c in clicks] if new_clicks is None else new_clicks
    return [{"round": round, "arm": arm, "clicks": c, "expected": c * 0.9, "regret": 1.0 - c * 0.1,
             "new_shown": new_shown, "new_clicks": n, "new_expected": 0.1 * new_shown}
            for c, n in zip(clicks, new_clicks, strict=True)]


def three_arms(static: list[int], greedy: list[int], picked: list[int]) -> pd.DataFrame:
    return pd.DataFrame(visits("static", static) + visits("greedy", greedy) + visits("picked", picked))


def test_both_lifts_overall_and_on_the_new_products_with_their_intervals():
    # Round 0 is before the injection (round 1): its new-product clicks must not count.
    before = visits("static", [5] * 10, new_clicks=[5] * 10) + visits("greedy", [5] * 10, new_clicks=[0] * 10)
    after = (visits("static", [1] * 50 + [0] * 50, new_clicks=[1] * 20 + [0] * 80, round=1)
             + visits("greedy", [1] * 60 + [0] * 40, new_clicks=[1] * 30 + [0] * 70, round=1)
             + visits("picked", [1] * 66 + [0] * 34, new_clicks=[1] * 45 + [0] * 55, round=1))
    numbers = lifts(pd.DataFrame(before + after), seed=0, injected_round=1)
    assert set(numbers) == {"lift_learning", "lift_exploration", "lift_learning_new_products",
                            "lift_exploration_new_products"}
    learning, exploration = numbers["lift_learning"], numbers["lift_exploration"]
    assert (learning["treatment"], learning["control"], exploration["treatment"], exploration["control"]) == (
        "greedy", "static", "picked", "greedy")
    assert learning["lift"] == pytest.approx((110 / 110) / (100 / 110) - 1)  # every visit counts overall
    assert exploration["lift"] == pytest.approx(0.66 / 1.0 - 1)
    assert numbers["lift_learning_new_products"]["lift"] == pytest.approx(0.5)  # 0.30 vs 0.20 after round 1
    assert numbers["lift_exploration_new_products"]["lift"] == pytest.approx(0.5)  # 0.45 vs 0.30
    for row in numbers.values():
        assert row["low"] <= row["lift"] <= row["high"]
    table = lift_table(numbers)
    assert table["lift"].tolist() == ["learning (`greedy` over `static`)", "exploration (`picked` over `greedy`)"]
    assert table.iloc[1, 2].startswith("+50.0% [")


def test_no_injection_leaves_the_new_product_lifts_undefined():
    numbers = lifts(three_arms([0, 1] * 10, [1, 1] * 10, [1, 2] * 10), seed=0, injected_round=-1)
    assert np.isnan(numbers["lift_exploration_new_products"]["lift"]) and numbers["lift_exploration"]["lift"] == 0.5


@pytest.mark.parametrize(
    ("arms", "won", "words"),
    [(([0, 1] * 50, [1, 1] * 50, [1, 2] * 50), True,
      "learning: greedy beats the static model on clicks, 1.000 vs 0.500 per visit, lift +100.0%"),
     (([0, 1] * 50, [1, 1] * 50, [1, 2] * 50), True,
      "exploration: the picked policy beats greedy, 1.500 vs 1.000 per visit, lift +50.0% (95% bootstrap CI ["),
     (([1, 1] * 50, [0, 1] * 50, [0, 1] * 50), False, "greedy does not beat the static model"),
     (([0, 1] * 50, [1, 2] * 50, [0, 1] * 50), False,
      "the picked policy does not beat greedy, 0.500 vs 1.500 per visit, lift -66.7%"),
     (([0, 1] * 50, [1, 2] * 50, [1]), False, "not enough visits in every arm to compare")],
)
def test_the_verdict_gives_the_value_of_learning_and_of_exploration(arms, won, words):
    result, sentence = verdict(lifts(three_arms(*arms), seed=0, injected_round=-1))
    assert result is won and words in sentence


def test_the_demo_serves_three_arms_with_greedy_the_control_first():
    arms = ab_arms(Arm("thompson", {"prior_strength": 3.0}))
    assert arms == ("greedy@1.4142135623730951", "static", "picked=thompson:prior_strength=3")
    served = ServeConfig(model="m", arms=arms).served_arms()
    assert [(a.name, a.policy) for a in served] == [("greedy", "greedy"), ("static", "static"), ("picked", "thompson")]
    assert PICKED_SHARE == pytest.approx(1 / (2 + 2**0.5)) and ARM_WEIGHTS["greedy"] == pytest.approx(2**0.5)


def test_a_sweep_that_picks_a_baseline_serves_its_best_exploring_trial():
    lints = Arm("lints", {"scale": 0.1})
    assert served_pick(SimpleNamespace(pick=Arm("greedy"), explorer=lints)) == lints
    assert served_pick(SimpleNamespace(pick=lints, explorer=lints)) == lints
    assert served_pick(SimpleNamespace(pick=Arm("greedy"), explorer=None)) == Arm("greedy")


def test_the_arm_table_puts_the_control_first_with_wilson_intervals():
    frame = pd.DataFrame(visits("picked", [1, 0, 2, 1]) + visits("static", [0, 0, 0, 1])
                         + visits("greedy", [0, 0, 1, 1]))
    table = arm_table(frame, k=10)
    assert table["arm"].tolist() == ["greedy", "static", "picked"]
    control = table.iloc[0]
    assert (control["visits"], control["clicks"], control["clicks/visit"], control["item CTR"]) == (4, 2, 0.5, 0.05)
    assert re.fullmatch(r"\[0\.\d{4}, 0\.\d{4}\]", control["item CTR 95% CI"])


def test_new_item_ctr_is_nan_for_an_arm_that_never_showed_one():
    frame = pd.DataFrame(visits("greedy", [1, 0], new_shown=0) + visits("picked", [1, 2], new_shown=2))
    table = new_item_table(frame).set_index("arm")
    assert np.isnan(table.loc["greedy", "CTR"])
    assert table.loc["picked", "new-item impressions"] == 4 and table.loc["picked", "CTR"] == 0.75  # (1 + 2) clicks of 4


def test_latency_percentiles_per_endpoint():
    traffic = Traffic(recommend_ms=list(range(1, 101)), feedback_ms=[])
    table = latency_table(traffic)
    assert table["endpoint"].tolist() == ["POST /recommend"]
    assert table.iloc[0]["p50 ms"] == pytest.approx(50.5) and table.iloc[0]["max ms"] == 100


def test_the_curl_lines_are_valid_shell_with_json_bodies():
    world = SimpleNamespace(item_ids=np.arange(1, 201))
    lines = curl_lines(8123, world, first_new_item=201)
    for line in lines:
        if line.startswith("#"):
            continue
        words = shlex.split(line)
        assert words[0] == "curl" and any(w.startswith("http://127.0.0.1:8123/") for w in words)
        if "-d" in words:
            body = words[words.index("-d") + 1]
            if "<impression_id" not in body:
                json.loads(body)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"port": 0}, "--port 0: must be in 1..65535"), ({"workers": 0}, "--workers 0: must be >= 1")],
)
def test_bad_demo_flags_name_the_flag(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        DemoConfig(**kwargs)


def test_each_sweep_trial_replays_the_traffic_the_picked_arm_gets():
    assert QUICK.sweep_batch == FULL.sweep_batch == 6  # 0.29 of 20 shoppers a round, over as many rounds
    assert {"static", "greedy", "linucb", "lints"} <= set(QUICK.policies) and "softmax" in FULL.policies
    assert QUICK.trials > len(QUICK.policies)  # each baseline once, each other policy at its defaults, then TPE
    assert DemoConfig(quick=True).budget is QUICK and DemoConfig().budget is FULL


def test_the_report_and_summary_give_the_three_arms_both_lifts_and_each_phase(tmp_path):
    from serendip.demo import QUICK
    from serendip.report import DemoOutcome, write_report

    rng = np.random.default_rng(0)
    traffic = Traffic(visits=[v for arm in ("static", "greedy", "picked") for t in range(QUICK.rounds)
                              for v in visits(arm, rng.integers(0, 3, 4).tolist(), new_shown=1, round=t)],
                      recommend_ms=[5.0, 7.0, 9.0], feedback_ms=[2.0, 3.0], injected_round=QUICK.rounds // 3)
    (tmp_path / "sweep").mkdir()
    table = pd.DataFrame({"status": ["ok"] * 10, "policy": ["thompson"] * 8 + ["static", "greedy"],
                          "arm": [f"thompson:prior_strength={i}" for i in range(8)] + ["static", "greedy"],
                          "regret": np.arange(10.0)})
    swept = SimpleNamespace(pick=Arm("greedy"), pick_value=10.5, explorer=Arm("thompson", {"prior_strength": 0.0}),
                            explorer_value=12.5, report=tmp_path / "sweep" / "report.md", table=table)
    trained = SimpleNamespace(metrics=[{"epoch": 0, "loss": 2.0, "val_ndcg10": 0.05}], model_dir=tmp_path / "model",
                              stopped="max_steps")
    phases = {"simulate": {"wall_s": 0.1, "cpu_s": 0.1}, "ray start": {"wall_s": 8.0, "cpu_s": 6.5},
              "train": {"wall_s": 40.0, "cpu_s": 61.2}}
    experiments = {"arms": [{"arm": "greedy", "impressions": 60, "ctr": 0.4, "ctr_ci95": [0.3, 0.5], "is_control": True}]}
    outcome = DemoOutcome(run=tmp_path, config=DemoConfig(quick=True), budget=QUICK, trained=trained, swept=swept,
                          port=8123, traffic=traffic, experiments=experiments, phases=phases,
                          world=SimpleNamespace(item_ids=np.arange(1, 51)), picked=swept.explorer)
    path, _, _ = write_report(outcome)
    report = path.read_text()
    assert ("- **Time per phase** (wall s / CPU s of the demo's process and the Ray processes it started, a lower "
            "bound, `recsys.cpu_time`): simulate 0.1/0.1, ray start 8/6.5, train 40/61.2; total 48 s wall "
            "before the report.") in report
    assert (tmp_path / "index.html").read_text().count('src="data:image/png;base64,') == 2  # the sweep plot is not there
    assert ("`greedy` (regret 10.5 in replay); it does not explore, so the A/B serves the best exploring trial, "
            "`thompson:prior_strength=0` (regret 12.5)") in report
    assert "| static |" in report and "| greedy |" in report  # the baselines shown beyond the top 8
    summary = json.loads((tmp_path / "summary.json").read_text())  # strict JSON: no NaN
    assert summary["phases"] == phases
    assert (summary["picked"], summary["sweep_pick"]) == ("thompson:prior_strength=0", "greedy")
    assert list(summary["arms"]) == ["greedy", "static", "picked"]
    assert summary["arms"]["picked"]["policy"] == "thompson:prior_strength=0"
    assert all(summary["arms"][a]["visits"] == 4 * QUICK.rounds for a in summary["arms"])
    for name in ("lift_learning", "lift_exploration", "lift_learning_new_products", "lift_exploration_new_products"):
        assert summary[name]["low"] <= summary[name]["lift"] <= summary[name]["high"], name


def test_the_loop_run_twice_reports_both_generations_the_models_and_the_off_policy_check(tmp_path):
    from serendip.generations import Update
    from serendip.report import DemoOutcome, write_report

    rng = np.random.default_rng(1)
    traffic = [Traffic(generation=g, visits=[{**v, "generation": g} for arm in ("static", "greedy", "picked")
                                             for v in visits(arm, rng.integers(0, 3 + g, 40).tolist(), new_shown=1)])
               for g in (0, 1)]
    rows = [{"policy": f"arm:{arm}", "spec": arm, "estimator": e, "value": 0.05, "ci_low": 0.04, "ci_high": 0.06,
             "ess": 100.0, "events": 20.0, "n": 1000, "online": 0.055, "rel_error": 0.05 / 0.55, "covers": True}
            for arm in ("greedy", "static", "picked") for e in ("ips", "snips", "dr", "sndr")]
    rows += [{"policy": "softmax:temperature=0.1", "spec": "softmax:temperature=0.1", "estimator": e, "value": 0.07,
              "ci_low": 0.05, "ci_high": 0.09, "ess": 50.0, "events": 9.0, "n": 1000, "online": float("nan"),
              "rel_error": float("nan"), "covers": None} for e in ("ips", "snips", "dr", "sndr")]
    update = Update(log={"slates": 120, "impression_bytes": 6000, "decision_bytes": 30000, "bytes_per_slate": 300.0},
                    ope=pd.DataFrame(rows), ope_arms={"greedy": "greedy"}, candidates=["softmax:temperature=0.1"],
                    retrained=SimpleNamespace(best={"val_ndcg10": 0.12}),
                    redeploy={"model_version_before": "model@a", "model_version_after": "model-1@b",
                              "bandit_restarted": False},
                    ndcg={"users": 30, "positives": 41, "model0": {"ndcg10": 0.1, "recall10": 0.2},
                          "model1": {"ndcg10": 0.12, "recall10": 0.22}, "popularity": {"ndcg10": 0.05, "recall10": 0.1}})
    swept = SimpleNamespace(pick=Arm("thompson"), pick_value=1.0, explorer=Arm("thompson"), explorer_value=1.0,
                            report=tmp_path / "sweep" / "report.md",
                            table=pd.DataFrame({"status": ["ok"], "policy": ["thompson"], "arm": ["thompson"],
                                                "regret": [1.0]}))
    outcome = DemoOutcome(run=tmp_path, config=DemoConfig(quick=True), budget=QUICK,
                          trained=SimpleNamespace(metrics=[], model_dir=tmp_path / "model", stopped=""), swept=swept,
                          port=8123, traffic=traffic, experiments={"arms": []}, phases={},
                          world=SimpleNamespace(item_ids=np.arange(1, 51)), picked=swept.pick, update=update)
    report = write_report(outcome)[0].read_text()
    assert "## 8. The loop, twice" in report and "| model 1 (retrained, generation 1) | 0.12 |" in report
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["generations"] == 2 and summary["visits"] == 2 * 3 * 40
    assert summary["arms"]["greedy"]["visits"] == 40  # the A/B sections read generation 0
    for g in (0, 1):
        assert list(summary[f"gen{g}_clicks_per_visit"]) == ["greedy", "static", "picked"]
    assert summary["ope_rel_error"]["dr"] == {arm: pytest.approx(1 / 11) for arm in ("greedy", "static", "picked")}
    assert summary["ope_covers"]["sndr"]["static"] is True
    assert summary["ope_candidates"] == {"softmax:temperature=0.1": 0.07}
    assert (summary["model0_ndcg10"], summary["model1_ndcg10"], summary["ndcg_users"]) == (0.1, 0.12, 30)
    assert summary["log_bytes_per_impression"] == 300.0 and summary["log_candidates_per_slate"] == QUICK.candidates
