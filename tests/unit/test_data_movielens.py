"""GroupLens ML-100k raw files onto the tables, on a tiny u.data/u.item the test writes."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from recsys.data import SCHEMAS, SchemaError, load_movielens_100k
from recsys.data.movielens import GENRES


def flags(*names: str) -> str:
    return "|".join("1" if genre in names else "0" for genre in GENRES)


U_ITEM = [
    f"10|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|{flags('Animation', 'Comedy')}",
    f"11|Café Society (1996)|||http://x|{flags()}",
    f"12|Nadja (1994)|01-Jan-1994||http://y|{flags('Drama', 'Thriller')}",
]
U_DATA = "1\t10\t5\t881250949\n2\t11\t3\t881250950\n1\t12\t4\t881250951\n"


def write_ml100k(folder, u_item=U_ITEM, u_data=U_DATA):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.item").write_bytes(("\n".join(u_item) + "\n").encode("latin-1"))
    (folder / "u.data").write_text(u_data)
    return folder


def test_items_carry_first_genre_all_genres_and_year(tmp_path):
    items, _ = load_movielens_100k(write_ml100k(tmp_path))
    assert list(items.columns) == SCHEMAS["items"].names
    assert items["item_id"].tolist() == [10, 11, 12]
    assert items["title"].tolist() == ["Toy Story (1995)", "Café Society (1996)", "Nadja (1994)"]
    assert items["category"].tolist() == ["Animation", "unknown", "Drama"]
    assert [json.loads(a) for a in items["attributes"]] == [
        {"genres": "Animation|Comedy", "year": "1995"},
        {"genres": "", "year": ""},
        {"genres": "Drama|Thriller", "year": "1994"},
    ]


def test_ratings_become_events_with_ids_kept(tmp_path):
    _, events = load_movielens_100k(write_ml100k(tmp_path))
    assert list(events.columns) == [*SCHEMAS["events"].names, "rating"]
    assert events["user_id"].tolist() == [1, 2, 1] and events["item_id"].tolist() == [10, 11, 12]
    assert events["event"].tolist() == ["purchase", "click", "purchase"]
    assert events["ts"][0] == pd.Timestamp(881250949, unit="s", tz="UTC")


@pytest.mark.parametrize(("u_item", "u_data", "file", "message"), [
    (U_ITEM, "1\t10\t5\t881250949\n2\tx11\t3\t881250950\n", "u.data",
     "column 'item_id' row 1: 'x11' is not an integer (int64); ids must be whole numbers such as 42"),
    (U_ITEM[:1] + ["13|Short row|01-Jan-1995"], U_DATA, "u.item", "not in the ml-100k layout ("),
])
def test_bad_raw_files_name_file_and_row(tmp_path, u_item, u_data, file, message):
    folder = write_ml100k(tmp_path, u_item, u_data)
    with pytest.raises(SchemaError, match=f"^{re.escape(f'{folder / file}: {message}')}"):
        load_movielens_100k(folder)


def test_missing_files_say_which_folder_is_wanted(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape("u.data: missing; pass the folder that holds")):
        load_movielens_100k(tmp_path)
