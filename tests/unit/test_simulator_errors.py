"""Bad simulator inputs fail early with a message that names the field and the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.simulator import World, WorldConfig


@pytest.mark.parametrize(("field", "value", "message"), [
    ("users", 0, r"^WorldConfig\.users: 0 must be a whole number >= 1$"),
    ("items", 2.5, r"^WorldConfig\.items: 2\.5 must be a whole number >= 1$"),
    ("days", -1, r"^WorldConfig\.days: -1 must be a whole number >= 0$"),
    ("history_len", 0, r"^WorldConfig\.history_len: 0 must be a whole number >= 1$"),
    ("sessions_per_day", 1.5, r"^WorldConfig\.sessions_per_day: 1\.5 must be in \[0, 1\]$"),
    ("sessions_per_day", 0.0, r"^WorldConfig\.sessions_per_day: 0\.0 must be in \(0, 1\]; shoppers have to visit$"),
    ("cart_rate", -0.1, r"^WorldConfig\.cart_rate: -0\.1 must be in \[0, 1\]$"),
    ("views_per_session", 0, r"^WorldConfig\.views_per_session: 0 must be > 0$"),
    ("satiation_half_life", -2.0, r"^WorldConfig\.satiation_half_life: -2\.0 must be > 0$"),
    ("satiation", -0.5, r"^WorldConfig\.satiation: -0\.5 must be >= 0$"),
    ("emerging_categories", 22, r"^WorldConfig\.emerging_categories: 22 must be < 22, the number of categories$"),
    ("latent_interests", 19, r"^WorldConfig\.revealed_interests: 2 revealed plus 19 latent must be <= 20 "
                             r"\(categories that are not emerging\)$"),
    ("start", "01/02/2024", r"^WorldConfig\.start: '01/02/2024' is not a date; write YYYY-MM-DD$"),
])
def test_bad_config_names_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        WorldConfig(**{field: value})


@pytest.fixture(scope="module")
def world() -> World:
    return World.create(WorldConfig(users=10, items=20, days=0, seed=1))


@pytest.mark.parametrize(("call", "message"), [
    (lambda w: w.click_probs(np.array([10]), np.array([[0, 1]])),
     r"^user_ids: 10 is out of range; users are 0\.\.9$"),
    (lambda w: w.click_probs(np.array([[0]]), np.array([[0, 1]])),
     r"^user_ids: expected a 1-d integer array, got shape \(1, 1\) dtype int64$"),
    (lambda w: w.click_probs(np.array([0]), np.array([0, 1])),
     r"^slates: expected a 2-d integer array of item indices, got shape \(2,\) dtype int64$"),
    (lambda w: w.click_probs(np.array([0, 1]), np.array([[0, 1]])),
     r"^slates: has 1 rows but there are 2 user_ids$"),
    (lambda w: w.click_probs(np.array([0]), np.array([[0, 20]])),
     r"^slates: item index 20 is out of range; indices are 0\.\.19 \(map item ids with world\.item_index\)$"),
    (lambda w: w.oracle_slates(np.array([0]), 3, np.array([1, 2])),
     r"^k: 3 must be in \[1, 2\] \(the number of candidates\)$"),
    (lambda w: w.attraction(np.array([0]), np.array([0.5])),
     r"^candidates: expected a 1-d or 2-d integer array of item indices, got shape \(1,\) dtype float64$"),
    (lambda w: w.item_index(np.array([1, 21])),
     r"^item_ids: 21 is not an item of this world \(ids 1\.\.20\)$"),
    (lambda w: w.inject_items(0, np.random.default_rng(0)),
     r"^n: 0 must be a whole number >= 1 \(products to inject\)$"),
    (lambda w: w.histories(np.array([0]), 0), r"^max_len: 0 must be a whole number >= 1$"),
])
def test_bad_calls_name_the_argument(world, call, message):
    with pytest.raises(ValueError, match=message):
        call(world)


def test_load_refuses_what_is_not_a_world(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"world\.json: no saved world here; write one with World\.save"):
        World.load(tmp_path)
    (tmp_path / "world.json").write_text(json.dumps({"format": "serendip.world", "version": 99}))
    with pytest.raises(ValueError, match=r"world\.json: version 99 is not 1; re-create the world"):
        World.load(tmp_path)
