"""`serendip summarize`: the summary of a small shop folder, and the errors for a wrong folder."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from recsys.data import write_table
from recsys.data.summary import SummarizeConfig, summarize


@pytest.fixture
def shop(tmp_path):
    items = pd.DataFrame({"item_id": [1, 2, 3], "title": ["a", "b", "c"], "category": ["shoes", "shoes", "mugs"],
                          "brand": None, "price": [10.0, 20.0, 5.0], "attributes": None})
    events = pd.DataFrame({
        "user_id": [7, 7, 7, 8],
        "item_id": [1, 2, 1, 3],
        "ts": pd.to_datetime(["2024-05-01 10:00", "2024-05-02 11:00", "2024-05-03 12:00", "2024-05-04 13:30"],
                             utc=True),
        "event": ["view", "click", "purchase", "click"],
    })
    write_table(items, tmp_path / "items.parquet", "items")
    write_table(events, tmp_path / "events.csv", "events")
    return tmp_path


def test_summary_counts_the_shop(shop, capsys):
    assert summarize(SummarizeConfig(data=shop)) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"shop {shop} (items.parquet, events.csv)",
        "items:    3 in 2 categories; 0 never in an event",
        "users:    2; events per user median 2, max 3",
        "events:   4 (view 1, click 2, cart 0, purchase 1)",
        "dates:    2024-05-01 10:00 .. 2024-05-04 13:30 UTC",
        "top categories by events: shoes 75.0%, mugs 25.0%",
        "sparsity: 50.0000% of user-item pairs have no event",
    ]


def test_summary_validates_the_tables(shop):
    (shop / "events.csv").write_text('user_id,item_id,ts,event\n1,2,2024-05-01T00:00:00Z,"like"\n')
    with pytest.raises(ValueError, match=re.escape("column 'event' row 0: 'like' is not one of")):
        summarize(SummarizeConfig(data=shop))


@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda p: p / "nowhere", ValueError, "not a folder; pass a shop folder such as one written by"),
    (lambda p: p, FileNotFoundError, ": no items.parquet or items.csv; a shop folder needs both"),
])
def test_wrong_folder_names_the_fix(tmp_path, make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        summarize(SummarizeConfig(data=make(tmp_path)))
