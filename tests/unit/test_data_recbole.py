"""RecBole atomic files onto the items and events tables, on small files the tests write."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from recsys.data import SCHEMAS, SchemaError, load_recbole

INTER = """user_id:token\titem_id:token\trating:float\ttimestamp:float
u7\ti2\t5\t881250949
u3\ti1\t3\t881250950.5
u7\ti9\t4\t881250951
"""
ITEM = """item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq
i1\tToy Story\t1995\tAnimation Children's Comedy
i2\tGoldenEye\t1995\tAction Adventure Thriller
i5\t"Quoted" Title\t\tDrama
"""


def write_dataset(folder, inter=INTER, item=ITEM, name="toy"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter").write_text(inter)
    if item is not None:
        (folder / f"{name}.item").write_text(item)
    return folder / name


def test_string_tokens_become_sorted_ranks_and_stay_reversible(tmp_path):
    items, events = load_recbole(write_dataset(tmp_path / "toy"))
    assert events["user_id"].tolist() == [1, 0, 1]  # u3 -> 0, u7 -> 1
    assert events["item_id"].tolist() == [1, 0, 3]  # i1, i2, i5, i9 -> 0..3 over both files
    pairs = pd.concat([items[["item_id", "item_token"]], events[["item_id", "item_token"]]]).drop_duplicates()
    assert pairs["item_id"].is_unique and pairs["item_token"].is_unique
    assert dict(zip(items["item_token"], items["item_id"], strict=True)) == {"i1": 0, "i2": 1, "i5": 2, "i9": 3}


def test_events_follow_the_rating_rule_and_keep_rating_and_time(tmp_path):
    _, events = load_recbole(write_dataset(tmp_path / "toy"))
    assert list(events.columns) == [*SCHEMAS["events"].names, "rating", "user_token", "item_token"]
    assert events["event"].tolist() == ["purchase", "click", "purchase"]
    assert events["rating"].tolist() == [5.0, 3.0, 4.0]
    assert events["ts"][1] == pd.Timestamp(881250950500, unit="ms", tz="UTC")


def test_items_map_title_category_and_attributes_with_placeholders(tmp_path):
    items, _ = load_recbole(write_dataset(tmp_path / "toy"))
    assert list(items.columns) == [*SCHEMAS["items"].names, "item_token"]
    row = items.set_index("item_token")
    assert row.loc["i1", "title"] == "Toy Story" and row.loc["i1", "category"] == "Animation"
    assert json.loads(row.loc["i1", "attributes"]) == {"release_year": "1995", "class": "Animation Children's Comedy"}
    assert row.loc["i5", "title"] == '"Quoted" Title'
    assert json.loads(row.loc["i5", "attributes"])["release_year"] == ""
    assert row.loc["i9", "title"] == "item i9" and row.loc["i9", "category"] is None


def test_plain_integer_tokens_keep_their_numbers(tmp_path):
    inter = "user_id:token\titem_id:token\n196\t242\n186\t302\n"
    items, events = load_recbole(write_dataset(tmp_path / "num", inter=inter, item=None, name="num"))
    assert events["user_id"].tolist() == [196, 186] and events["item_id"].tolist() == [242, 302]
    assert events["event"].tolist() == ["click", "click"]
    assert events["ts"].astype("int64").tolist() == [0, 1]  # no timestamp: file order
    assert sorted(items["item_id"]) == [242, 302] and set(items["title"]) == {"item 242", "item 302"}


def test_leading_zero_tokens_are_not_read_as_numbers(tmp_path):
    inter = "user_id:token\titem_id:token\n042\t1\n42\t2\n"
    _, events = load_recbole(write_dataset(tmp_path / "z", inter=inter, item=None, name="z"))
    assert events["user_id"].tolist() == [0, 1]  # "042" and "42" stay two users


def test_a_dataset_folder_works_as_the_prefix(tmp_path):
    write_dataset(tmp_path / "toy")
    items, events = load_recbole(tmp_path / "toy")
    assert len(items) == 4 and len(events) == 3


@pytest.mark.parametrize(("inter", "file", "message"), [
    ("user_id\titem_id:token\nu1\ti1\n", "toy.inter",
     "header field 'user_id' has no RecBole type; write header fields as name:type, "
     "type one of token, token_seq, float, float_seq"),
    ("user_id:token\titem_id:token\trating:float\nu1\ti1\t4\nu2\ti1\tfive\n", "toy.inter",
     "column 'rating' row 1: 'five' is not a number (float64); write a plain number such as 0.25"),
    ("user_id:token\trating:float\nu1\t4\n", "toy.inter",
     "missing field 'item_id:token'; RecBole .inter files need the field item_id:token"),
    ("user_id:token\titem_id:token\nu1\ti1\n\ti2\n", "toy.inter",
     "column 'user_id' row 1: empty value; every row needs one; fill it in or drop the row"),
    ("user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t5\nu1\ti2\t\n", "toy.inter",
     "column 'timestamp' row 1: empty value; every row needs one; fill it in or drop the row"),
])
def test_bad_atomic_files_name_file_field_and_row(tmp_path, inter, file, message):
    prefix = write_dataset(tmp_path / "toy", inter=inter, item=None)
    with pytest.raises(SchemaError, match=f"^{re.escape(f'{prefix.parent / file}: {message}')}$"):
        load_recbole(prefix)


def test_missing_inter_file_says_what_prefix_means(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape("nothing.inter: no RecBole interaction file")):
        load_recbole(tmp_path / "nothing")
