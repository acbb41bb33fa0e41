"""The replay loop with a recommender other than an in-process policy: visits it drops, new products it
is told of, and what each round hands back (the demo's HTTP shoppers use this loop)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.policies import make_policy
from recsys.replay import PolicyRecommender, Round, Served, replay_rounds, run_replay
from recsys.simulator import World, WorldConfig

CFG = WorldConfig(users=60, items=120, seed=3)


class EveryOtherVisit:
    """Ranks by the world's own prior, but answers only the even-numbered visits of a round (the others'
    requests 'failed'); keeps what it was told."""

    name = "every other visit"

    def __init__(self) -> None:
        self.added: list[pd.DataFrame] = []
        self.learned: list[Round] = []

    def recommend(self, world, users, candidates, k, rng) -> Served:
        answered = np.arange(0, len(users), 2)
        prior = world.prior_probs(users[answered], candidates[answered])
        top = np.argsort(-prior, axis=1)[:, :k]
        return Served(answered, np.take_along_axis(candidates[answered], top, axis=1), 0, ["a"] * len(answered))

    def learn(self, world, outcome: Round) -> None:
        self.learned.append(outcome)

    def add_items(self, rows: pd.DataFrame) -> None:
        self.added.append(rows)


def test_only_answered_visits_count_and_the_recommender_hears_of_new_products():
    recommender, seen = EveryOtherVisit(), []
    result = replay_rounds(World.create(CFG), recommender, rounds=6, batch=5, seed=0, k=3, n_candidates=12,
                           inject_round=2, inject_n=4, on_round=seen.append)
    assert [len(r.users) for r in recommender.learned] == [3] * 6  # visits 0, 2 and 4 of each round
    assert seen == recommender.learned and [r.t for r in seen] == list(range(6))
    assert [len(rows) for rows in recommender.added] == [4] and recommender.added[0]["item_id"].is_unique
    for r in seen:
        assert r.served.slates.shape == (3, 3) and r.regret.shape == (3,) and r.step.clicks.shape == (3, 3)
    assert np.allclose(result.regret, [r.regret.sum() for r in seen])
    assert result.clicks.tolist() == [int(r.step.clicks.sum()) for r in seen]
    assert result.explored_share == 0.0


def test_a_policy_through_the_shared_loop_is_run_replay():
    a = run_replay(World.create(CFG), make_policy("thompson"), rounds=5, batch=4, seed=1, k=3, n_candidates=12)
    b = replay_rounds(World.create(CFG), PolicyRecommender(make_policy("thompson")), rounds=5, batch=4, seed=1,
                      k=3, n_candidates=12)
    np.testing.assert_array_equal(a.regret, b.regret)
    np.testing.assert_array_equal(a.clicks, b.clicks)
    assert a.policy == b.policy == "thompson"
