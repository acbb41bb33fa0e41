"""The real Open Bandit Dataset sample (../shared/data/obd) as impressions plus contexts."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.data import SCHEMAS, load_obd

OBD = Path(__file__).resolve().parents[3] / "shared" / "data" / "obd"
pytestmark = pytest.mark.skipif(not OBD.exists(), reason=f"the shared OBD sample is not at {OBD}")


@pytest.fixture(scope="module")
def logs():
    return {policy: load_obd(OBD, policy) for policy in ("random", "bts")}


@pytest.mark.parametrize(("policy", "clicks"), [("random", 38), ("bts", 42)])
def test_impressions_match_the_readme(logs, policy, clicks):
    log = logs[policy]
    imp = log.impressions
    assert list(imp.columns) == SCHEMAS["impressions"].names
    assert len(imp) == 10_000 and imp["reward"].sum() == clicks  # docs/limits.md: 38 and 42 clicks
    assert (log.n_items, log.n_positions) == (80, 3)
    assert sorted(imp["position"].unique()) == [0, 1, 2]
    assert imp["impression_id"][:2].tolist() == [f"{policy}-0", f"{policy}-1"]
    assert (imp["policy"] == policy).all() and imp["score"].isna().all()
    assert imp["ts"].is_monotonic_increasing and imp["ts"][0].year == 2019


def test_propensities_are_the_logging_policies(logs):
    assert np.allclose(logs["random"].impressions["propensity"], 1 / 80)  # uniform over 80 items
    bts = logs["bts"].impressions["propensity"]
    assert bts.min() < 1e-4 and bts.max() <= 1.0  # docs/limits.md: BTS goes down to ~5e-5


def test_context_arrays_line_up_with_rows_and_items(logs):
    log = logs["random"]
    raw = pd.read_csv(OBD / "random" / "all" / "all.csv", nrows=5)
    assert log.user_features.shape == (10_000, 4) and log.user_features.dtype == np.int64
    assert log.affinity.shape == (10_000, 80)
    assert np.array_equal(log.affinity[:5], raw.filter(like="user-item_affinity_").to_numpy())
    context = pd.read_csv(OBD / "random" / "all" / "item_context.csv")
    assert log.item_features.shape[0] == 80 and len(log.item_feature_names) == log.item_features.shape[1]
    assert np.allclose(log.item_features[:, 0], context.sort_values("item_id")["item_feature_0"])
    assert (log.item_features[:, 1:].sum(axis=1) == 3).all()  # one hot per categorical feature


def test_user_id_is_one_hash_of_the_user_features_across_logs(logs):
    for log in logs.values():
        per_user = pd.DataFrame(log.user_features).groupby(log.impressions["user_id"].to_numpy()).nunique()
        assert (per_user == 1).all().all()
    shared = set(logs["random"].impressions["user_id"]) & set(logs["bts"].impressions["user_id"])
    assert len(shared) > 50  # the same segments appear under both policies


@pytest.mark.parametrize(("policy", "campaign", "error", "message"), [
    ("ucb", "all", ValueError, "unknown OBD policy 'ucb'; use one of random, bts"),
    ("random", "kids", ValueError, "unknown OBD campaign 'kids'; use one of all, men, women"),
    ("random", "men", FileNotFoundError, "men.csv: missing; root must be the OBD folder holding"),
])
def test_bad_arguments_name_the_choices(policy, campaign, error, message):
    with pytest.raises(error, match=re.escape(message)):
        load_obd(OBD, policy, campaign)
