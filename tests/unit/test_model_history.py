"""recsys.model.history and losses: padded newest-first histories and the training objectives."""

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.model.history import HistoryIndex, sort_for_history
from recsys.model.losses import click_bce_loss, in_batch_negatives, log_popularity, sampled_softmax_loss


@pytest.fixture()
def index():
    events = pd.DataFrame({
        "user_id": [1, 1, 1, 2, 2, 1],
        "item_id": [10, 11, 12, 20, 21, 13],
        "ts": pd.to_datetime([1, 2, 3, 1, 2, 4], unit="s", utc=True),
        "event": ["click", "purchase", "click", "cart", "click", "view"],
    })
    ordered = sort_for_history(events)
    return ordered, HistoryIndex.build(ordered, ordered["item_id"].to_numpy() % 100)


def test_histories_are_newest_first_and_padded(index):
    _, idx = index
    rows, events, mask = idx.gather(np.array([1, 2, 3]), 3)
    np.testing.assert_array_equal(rows, [[13, 12, 11], [21, 20, 0], [0, 0, 0]])
    np.testing.assert_array_equal(events, [[0, 1, 3], [1, 2, 0], [0, 0, 0]])
    np.testing.assert_array_equal(mask, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])


def test_training_history_modes(index):
    ordered, idx = index
    pos = int(ordered.index[(ordered.user_id == 1) & (ordered.item_id == 12)][0])
    before, _, m1 = idx.gather(np.array([1]), 4, positions=np.array([pos]), mode="before")
    others, _, m2 = idx.gather(np.array([1]), 4, positions=np.array([pos]), mode="others")
    assert before[0][m1[0]].tolist() == [11, 10]
    assert others[0][m2[0]].tolist() == [13, 11, 10]
    negative, _, m3 = idx.gather(np.array([1]), 4, positions=np.array([-1]), mode="before")
    assert negative[0][m3[0]].tolist() == [13, 12, 11, 10]


def test_history_drop_hides_items_but_keeps_order(index):
    _, idx = index
    rows, _, mask = idx.gather(np.array([1] * 200), 4, drop=0.5, rng=np.random.default_rng(0))
    kept = mask.sum(1)
    assert 0 < kept.mean() < 4
    for r, m in zip(rows, mask, strict=True):
        seq = r[m].tolist()
        assert seq == sorted(seq, reverse=True)


def test_items_of_lists_every_event(index):
    _, idx = index
    batch, rows = idx.items_of(np.array([2, 9, 1]))
    assert sorted(zip(batch.tolist(), rows.tolist(), strict=True)) == [(0, 20), (0, 21), (2, 10), (2, 11), (2, 12), (2, 13)]


def test_unsorted_events_are_refused():
    events = pd.DataFrame({"user_id": [2, 1], "item_id": [1, 2], "ts": [0, 0], "event": ["click", "click"]})
    with pytest.raises(ValueError, match="must be sorted by user"):
        HistoryIndex.build(events, np.array([0, 1]))


def test_unknown_event_names_are_refused():
    events = pd.DataFrame({"user_id": [1], "item_id": [1], "ts": [0], "event": ["like"]})
    with pytest.raises(ValueError, match="event 'like' is not one of"):
        HistoryIndex.build(events, np.array([0]))


def test_logq_correction_matches_its_formula():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.5, 0.5, 3.0]])
    log_q = log_popularity(torch.tensor([10, 0, 5]))
    targets = torch.tensor([0, 2])
    expected = torch.nn.functional.cross_entropy(logits - log_q, targets)
    torch.testing.assert_close(sampled_softmax_loss(logits, targets, log_q), expected)
    # A popular item's logit is corrected downwards the most.
    assert log_q[0] > log_q[2] > log_q[1]


def test_accidental_hits_are_not_negatives():
    logits = torch.tensor([[1.0, 5.0, 0.0]])
    exclude = torch.tensor([[False, True, False]])
    zero_q = torch.zeros(3)
    masked = sampled_softmax_loss(logits, torch.tensor([0]), zero_q, exclude)
    unmasked_without_1 = torch.nn.functional.cross_entropy(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    torch.testing.assert_close(masked, unmasked_without_1)


def test_in_batch_negatives_never_pick_the_target_or_excluded():
    targets = torch.tensor([0, 1, 2, 3])
    exclude = torch.zeros(4, 6, dtype=torch.bool)
    exclude[0, 5] = True
    rows, cols = in_batch_negatives(targets, 6, 3, exclude, torch.Generator().manual_seed(0))
    assert len(rows) == 12
    assert not (cols == targets[rows]).any()
    assert not ((rows == 0) & (cols == 5)).any()


def test_bce_pos_weight_upweights_clicks():
    logits, labels = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0])
    assert click_bce_loss(logits, labels, 3.0) > click_bce_loss(logits, labels, 1.0)
