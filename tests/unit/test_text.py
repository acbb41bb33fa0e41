"""recsys.text: the one rendering of an item as text, shared by training and serving."""

import math

import pandas as pd
import pytest

from recsys.text import SEPARATOR, price_band, render_item, render_items


def test_full_item_reads_in_template_order():
    row = {"title": "Northpeak trail shoe", "category": "shoes", "brand": "Northpeak", "price": 89.0,
           "attributes": '{"colour": "grey", "material": "mesh"}'}
    assert render_item(row) == "Northpeak trail shoe | shoes | Northpeak | premium price | colour: grey, material: mesh"


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"title": "Hat"}, "Hat"),
        ({"title": "Hat", "category": None, "brand": float("nan"), "price": None}, "Hat"),
        ({"title": "Hat", "brand": "  ", "attributes": ""}, "Hat"),
        ({"title": "Hat", "attributes": "{}"}, "Hat"),
        ({"title": "Hat", "attributes": "not json"}, "Hat | not json"),
        ({"title": "Hat", "attributes": {"size": "M", "fit": None}}, "Hat | size: M"),
        ({"title": "Hat", "price": 5}, "Hat | budget price"),
    ],
)
def test_missing_fields_are_left_out(row, expected):
    assert render_item(row) == expected


@pytest.mark.parametrize(
    ("price", "band"),
    [(0.0, "budget price"), (19.99, "budget price"), (20.0, "mid-range price"), (74.0, "mid-range price"),
     (75.0, "premium price"), (250.0, "luxury price"), (None, None), (math.nan, None), (-1.0, None)],
)
def test_price_bands(price, band):
    assert price_band(price) == band


def test_render_items_keeps_row_order():
    df = pd.DataFrame({"item_id": [2, 1], "title": ["b", "a"], "category": ["x", None]})
    assert render_items(df) == [f"b{SEPARATOR}x", "a"]


def test_render_items_needs_titles():
    with pytest.raises(KeyError, match="column 'title' is missing"):
        render_items(pd.DataFrame({"item_id": [1]}))
