"""The sweep report: tables, failed trials, plots and the serving snippet, without Ray."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from recsys.policies import Arm
from serving.config import ServeConfig
from tuning.plots import Curve, plot_metric_by_epoch, plot_regret_over_time, plot_reward_vs_rate, reward_lines
from tuning.report import Report, markdown_table, write_report
from tuning.serving_arm import snippet, user_config
from tuning.trials import ObjectiveNotReportedError, TrialRecord, error_text, require_objective

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _table() -> pd.DataFrame:
    rows = [
        ("static", None, np.nan, 0.15, "ok"),
        ("greedy", None, np.nan, 0.20, "ok"),
        ("epsilon_greedy", "epsilon", 0.01, 0.22, "ok"),
        ("epsilon_greedy", "epsilon", 0.10, 0.30, "ok"),
        ("epsilon_greedy", "epsilon", 0.40, 0.25, "ok"),
        ("softmax", "temperature", 0.05, 0.27, "ok"),
        ("softmax", "temperature", 0.50, np.nan, "error"),
        ("thompson", "prior_strength", 3.0, 0.26, "ok"),
    ]
    df = pd.DataFrame(rows, columns=["policy", "rate_name", "rate", "reward", "status"])
    df["reward_low"], df["reward_high"] = df["reward"] - 0.02, df["reward"] + 0.02
    return df


def test_markdown_table_escapes_pipes_and_formats_numbers():
    df = pd.DataFrame({"policy": ["a|b"], "value": [0.123456789], "missing": [float("nan")]})
    assert markdown_table(df) == "| policy | value | missing |\n| --- | --- | --- |\n| a\\|b | 0.1235 |  |"
    assert markdown_table(pd.DataFrame()) == "_(none)_"


def test_plots_are_non_empty_pngs(tmp_path):
    paths = [
        plot_reward_vs_rate(_table(), tmp_path / "rate.png", "reward per slot"),
        plot_regret_over_time({"greedy": Curve(np.arange(1, 51), np.arange(50.0), np.arange(50.0) - 1, np.arange(50.0) + 1),
                               "eps": Curve(np.arange(1, 51), np.arange(50.0) / 2, np.arange(50.0) / 3, np.arange(50.0))},
                              tmp_path / "regret.png"),
        plot_metric_by_epoch(pd.DataFrame({"trial": ["a", "a", "b"], "training_iteration": [1, 2, 1],
                                           "val_ndcg10": [0.1, 0.2, 0.05]}), "val_ndcg10", tmp_path / "ndcg.png"),
    ]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_the_reward_plot_starts_the_epsilon_and_temperature_lines_from_greedy_at_rate_zero():
    bands, lines = reward_lines(_table())
    assert list(bands) == ["greedy (exploit only: rate 0)", "static (no parameter)"]
    assert list(lines) == ["epsilon_greedy (epsilon)", "softmax (temperature)", "thompson (prior_strength)"]
    eps = lines["epsilon_greedy (epsilon)"]
    assert eps["rate"].tolist() == [0.0, 0.01, 0.10, 0.40] and eps["reward"].tolist() == [0.20, 0.22, 0.30, 0.25]
    assert lines["softmax (temperature)"]["rate"].tolist() == [0.0, 0.05]  # the failed trial is not drawn
    assert lines["thompson (prior_strength)"]["rate"].tolist() == [3.0]  # its zero is not greedy: no start point
    _, without_greedy = reward_lines(_table().query("policy != 'greedy'"))
    assert without_greedy["epsilon_greedy (epsilon)"]["rate"].tolist() == [0.01, 0.10, 0.40]


def test_report_lists_failed_trials_with_their_error_and_links_plots(tmp_path):
    plot = plot_reward_vs_rate(_table(), tmp_path / "plots" / "rate.png", "reward")
    failed = pd.DataFrame({"trial": ["t5"], "policy": ["softmax"], "error": ["ValueError: temperature=-1 must be > 0"]})
    report = Report("Exploration sweep", {"objective": "regret (min)", "trials": 6},
                    ranked=_table().query("status == 'ok'"), failed=failed,
                    plots={"Reward against exploration rate": plot},
                    snippets={"Serving config": snippet(Arm("epsilon_greedy", {"epsilon": 0.1}))},
                    notes=["effective sample size too small for 2 trials"])
    text = write_report(report, tmp_path).read_text()
    assert "## Failed trials (1)" in text
    assert "ValueError: temperature=-1 must be > 0" in text
    assert "![Reward against exploration rate](plots/rate.png)" in text
    assert "- effective sample size too small for 2 trials" in text
    assert "epsilon: 0.1" in text


def test_serving_snippet_is_the_serve_user_config_shape():
    arm = Arm("thompson", {"floor": 0.005, "prior_strength": 20.0})
    parsed = yaml.safe_load(snippet(arm, model="models/best"))
    assert parsed == {"user_config": user_config(arm)}
    assert parsed["user_config"]["arms"] == [
        {"name": "tuned", "policy": "thompson", "params": {"floor": 0.005, "prior_strength": 20.0}, "weight": 1.0}
    ]
    assert "--arms tuned=thompson:floor=0.005,prior_strength=20\n" in snippet(arm)


def test_serving_snippet_is_accepted_by_the_serving_config():
    arm = Arm("epsilon_greedy", {"epsilon": 0.05})
    cli_arm = snippet(arm).split("--arms ")[1].splitlines()[0]
    assert ServeConfig(model="m", arms=(cli_arm,)).user_config() == user_config(arm)
    control = Arm("greedy")
    assert ServeConfig(model="m", arms=("control=greedy", cli_arm)).user_config() == user_config(arm, control)


@pytest.mark.parametrize(
    ("records", "match"),
    [
        ([], r"no trial reported the objective 'regret' \(trials reported \[\]\)"),
        ([TrialRecord("t0", {}, {"reward": 1.0}, None, "p")],
         r"no trial reported the objective 'regret' \(trials reported \['reward'\]\); fix the trainable"),
        ([TrialRecord("t0", {}, {}, "ValueError: boom", "p")],
         r"1 of 1 trials failed, first: ValueError: boom"),
    ],
)
def test_an_objective_no_trial_reported_is_named(records, match):
    with pytest.raises(ObjectiveNotReportedError, match=match):
        require_objective(records, "regret")


def test_error_text_keeps_the_root_cause_on_one_line():
    class Wrapped(Exception):
        cause = ValueError("line one\nepsilon=-1 must be >= 0")

    assert error_text(Wrapped("ray wrapper")) == "ValueError: epsilon=-1 must be >= 0"
    assert error_text(None) is None
