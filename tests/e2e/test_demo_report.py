"""The demo's pure pieces (no Ray, seconds): its config, the A/B statistics and the report's tables."""

from __future__ import annotations

import json
import re
import shlex
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from serendip.demo import FULL, QUICK, DemoConfig, Traffic
from serendip.report import arm_table, curl_lines, latency_table, lift_interval, new_item_table, verdict


def visits(arm: str, clicks: list[int], new_shown: int = 0) -> list[dict]:
    return [{"arm": arm, "clicks": c, "expected": c * 0.9, "regret": 1.0 - c * 0.1, "new_shown": new_shown,
             "new_clicks": min(c, new_shown), "new_expected": 0.1 * new_shown} for c in clicks]


def test_the_lift_and_its_bootstrap_interval():
    picked, control = np.array([1] * 60 + [0] * 40), np.array([1] * 50 + [0] * 50)
    lift, low, high = lift_interval(picked, control)
    assert lift == pytest.approx(0.2)
    assert low < 0.2 < high and high - low < 1.0


@pytest.mark.parametrize(
    ("picked", "control", "won", "words"),
    [([1, 2, 1, 2] * 50, [0, 1, 1, 0] * 50, True, "beats the greedy control on clicks: 1.500 vs 0.500"),
     ([0, 1, 1, 0] * 50, [1, 2, 1, 2] * 50, False, "does not beat the greedy control on clicks: 0.500 vs 1.500"),
     ([1], [0, 1], False, "not enough visits in both arms to compare")],
)
def test_the_verdict_compares_clicks_per_visit(picked, control, won, words):
    frame = pd.DataFrame(visits("picked", picked) + visits("control", control))
    result, sentence, numbers = verdict(frame, seed=0)
    assert result is won and words in sentence
    if numbers:
        assert numbers["lift_ci95"][0] <= numbers["lift"] <= numbers["lift_ci95"][1]


def test_the_arm_table_puts_the_control_first_with_wilson_intervals():
    frame = pd.DataFrame(visits("picked", [1, 0, 2, 1]) + visits("control", [0, 0, 1, 1]))
    table = arm_table(frame, k=10)
    assert table["arm"].tolist() == ["control", "picked"]
    control = table.iloc[0]
    assert (control["visits"], control["clicks"], control["clicks/visit"], control["item CTR"]) == (4, 2, 0.5, 0.05)
    assert re.fullmatch(r"\[0\.\d{4}, 0\.\d{4}\]", control["item CTR 95% CI"])


def test_new_item_ctr_is_nan_for_an_arm_that_never_showed_one():
    frame = pd.DataFrame(visits("control", [1, 0], new_shown=0) + visits("picked", [1, 2], new_shown=2))
    table = new_item_table(frame).set_index("arm")
    assert np.isnan(table.loc["control", "CTR"])
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


def test_each_sweep_trial_replays_the_traffic_one_ab_arm_gets():
    assert QUICK.sweep_rounds == QUICK.rounds // 2 and FULL.sweep_rounds == FULL.rounds // 2
    assert DemoConfig(quick=True).budget is QUICK and DemoConfig().budget is FULL


def test_the_report_records_the_wall_and_cpu_seconds_of_each_phase(tmp_path):
    from serendip.demo import QUICK
    from serendip.report import DemoOutcome, write_report

    rng = np.random.default_rng(0)
    traffic = Traffic(visits=visits("control", rng.integers(0, 3, 60).tolist(), new_shown=1)
                      + visits("picked", rng.integers(0, 3, 60).tolist(), new_shown=1),
                      recommend_ms=[5.0, 7.0, 9.0], feedback_ms=[2.0, 3.0])
    (tmp_path / "sweep").mkdir()
    swept = SimpleNamespace(pick=SimpleNamespace(label=lambda: "thompson(prior_strength=10)"), pick_value=12.5,
                            report=tmp_path / "sweep" / "report.md",
                            table=pd.DataFrame({"status": ["ok"], "arm": ["thompson(prior_strength=10)"], "regret": [12.5]}))
    trained = SimpleNamespace(metrics=[{"epoch": 0, "loss": 2.0, "val_ndcg10": 0.05}], model_dir=tmp_path / "model",
                              stopped="max_steps")
    phases = {"simulate": {"wall_s": 0.1, "cpu_s": 0.1}, "ray start": {"wall_s": 8.0, "cpu_s": 6.5},
              "train": {"wall_s": 40.0, "cpu_s": 61.2}}
    experiments = {"arms": [{"arm": "control", "impressions": 60, "ctr": 0.4, "ctr_ci95": [0.3, 0.5], "is_control": True}]}
    outcome = DemoOutcome(run=tmp_path, config=DemoConfig(quick=True), budget=QUICK, trained=trained, swept=swept,
                          port=8123, traffic=traffic, experiments=experiments, phases=phases,
                          world=SimpleNamespace(item_ids=np.arange(1, 51)))
    path, _, _ = write_report(outcome)
    assert ("- **Time per phase** (wall s / CPU s of the demo's processes): simulate 0.1/0.1, ray start 8/6.5, "
            "train 40/61.2; total 48 s wall before the report.") in path.read_text()
    assert json.loads((tmp_path / "summary.json").read_text())["phases"] == phases
