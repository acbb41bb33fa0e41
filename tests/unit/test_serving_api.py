"""Request bounds of the HTTP API: each violation names its field."""

import pytest
from pydantic import ValidationError

from serving.api import FeedbackRequest, ItemsRequest, RecommendRequest

OK_ITEM = {"item_id": 1, "title": "Northpeak trail shoe"}


@pytest.mark.parametrize(
    ("model", "body", "loc", "match"),
    [
        (RecommendRequest, {"user_id": 1, "k": 0}, ("k",), "greater than or equal to 1"),
        (RecommendRequest, {"user_id": 1, "k": 101}, ("k",), "less than or equal to 100"),
        (RecommendRequest, {"user_id": 1, "k": True}, ("k",), "valid integer"),
        (RecommendRequest, {"user_id": 1, "k": 5.0}, ("k",), "valid integer"),
        (RecommendRequest, {"user_id": 2**63}, ("user_id",), "less than or equal to 9223372036854775807"),
        (RecommendRequest, {"user_id": 1, "history": list(range(201))}, ("history",), "at most 200 items"),
        (RecommendRequest, {"user_id": 1, "query": "x" * 2001}, ("query",), "at most 2000 characters"),
        (RecommendRequest, {"user_id": 1, "query": "\ud800"}, ("query",), "unable to parse raw data as a unicode string"),
        (RecommendRequest, {"user_id": 1, "candidates": list(range(1001))}, ("candidates",), "at most 1000 items"),
        (RecommendRequest, {"user_id": 1, "exclude": list(range(1001))}, ("exclude",), "at most 1000 items"),
        (RecommendRequest, {"user_id": 1, "history": [1, 2], "history_events": ["click"]}, (),
         "history_events has 1 entries but history has 2"),
        (RecommendRequest, {"user_id": 1, "history": [1], "history_events": ["like"]}, ("history_events", 0),
         "'view', 'click', 'cart' or 'purchase'"),
        (RecommendRequest, {"user_id": 1, "colour": "red"}, ("colour",), "Extra inputs are not permitted"),
        (RecommendRequest, {"k": 3}, ("user_id",), "Field required"),
        (FeedbackRequest, {"impression_id": "a", "item_id": 1}, (), "send exactly one of reward"),
        (FeedbackRequest, {"impression_id": "a", "item_id": 1, "reward": 1.0, "event": "click"}, (),
         "send exactly one of reward"),
        (FeedbackRequest, {"impression_id": "a", "item_id": 1, "reward": 1.5}, ("reward",), "less than or equal to 1"),
        (FeedbackRequest, {"impression_id": "a", "item_id": 1, "reward": float("nan")}, ("reward",), "finite number"),
        (FeedbackRequest, {"impression_id": "", "item_id": 1, "reward": 1.0}, ("impression_id",), "at least 1 character"),
        (FeedbackRequest, {"impression_id": "a" * 129, "item_id": 1, "reward": 1}, ("impression_id",), "at most 128"),
        (ItemsRequest, {"items": []}, ("items",), "at least 1 item"),
        (ItemsRequest, {"items": [OK_ITEM, OK_ITEM]}, (), "each item_id may appear once"),
        (ItemsRequest, {"items": [{**OK_ITEM, "title": ""}]}, ("items", 0, "title"), "at least 1 character"),
        (ItemsRequest, {"items": [{**OK_ITEM, "price": -1}]}, ("items", 0, "price"), "greater than or equal to 0"),
        (ItemsRequest, {"items": [{**OK_ITEM, "attributes": {"k": 1}}]}, ("items", 0, "attributes", "k"),
         "valid string"),
    ],
)
def test_bad_requests_name_the_field(model, body, loc, match):
    with pytest.raises(ValidationError, match=match) as info:
        model.model_validate(body)
    assert tuple(info.value.errors()[0]["loc"]) == loc


def test_valid_requests_pass():
    req = RecommendRequest.model_validate(
        {"user_id": 7, "history": [3, 2], "history_events": ["purchase", "view"], "query": "trail shoe", "k": 100,
         "candidates": list(range(1000)), "exclude": [1]})
    assert req.k == 100 and req.history_events == ["purchase", "view"]
    assert FeedbackRequest.model_validate({"impression_id": "a", "item_id": 1, "event": "cart"}).event == "cart"
    items = ItemsRequest.model_validate({"items": [{**OK_ITEM, "price": 12.5, "attributes": {"colour": "grey"}}]})
    assert items.items[0].attributes == {"colour": "grey"}
