"""The HTTP shapes of the API (README, "HTTP API") with a bound on every field a client controls.

A request outside a bound gets FastAPI's 422, whose ``detail[].loc`` names the field. Ids are
int64 and strict (no bools, floats or numeric strings); pydantic already refuses strings with lone
surrogates, which no tokenizer could read.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recsys.data.schemas import EVENT_TYPES

MAX_K = 100
MAX_HISTORY = 200
MAX_TEXT = 2000
MAX_CANDIDATES = 1000
MAX_ITEMS_PER_PUT = 256
MAX_ATTRIBUTES = 32
MAX_IMPRESSION_ID = 128
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

EventName = Literal[EVENT_TYPES]  # type: ignore[valid-type]  # the names of recsys's one event table


ItemId = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX, strict=True)]
UserId = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX, strict=True)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
ShortText = Annotated[str, Field(max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendRequest(_Strict):
    """Ask for a slate of k items for one user."""

    user_id: UserId
    history: list[ItemId] = Field(default_factory=list, max_length=MAX_HISTORY,
                                  description="The user's recent items, newest first.")
    history_events: list[EventName] | None = Field(
        default=None, max_length=MAX_HISTORY,
        description="Optional event of each history item (default click); purchased items are never recommended.")
    query: Text | None = Field(default=None, description="Optional free-text search; the only input BERT reads per request.")
    k: int = Field(default=10, ge=1, le=MAX_K, strict=True)
    candidates: list[ItemId] | None = Field(default=None, max_length=MAX_CANDIDATES,
                                            description="Restrict the slate to these items.")
    exclude: list[ItemId] = Field(default_factory=list, max_length=MAX_CANDIDATES,
                                  description="Items never to show.")

    @model_validator(mode="after")
    def _events_match_history(self) -> RecommendRequest:
        if self.history_events is not None and len(self.history_events) != len(self.history):
            raise ValueError(
                f"history_events has {len(self.history_events)} entries but history has {len(self.history)}; "
                "send one event per history item or leave history_events out"
            )
        return self


class SlateItem(BaseModel):
    """One shown item with the probability that the policy shows it at this position."""

    item_id: int
    position: int
    score: float
    propensity: float
    explored: bool


class RecommendResponse(BaseModel):
    """A slate; quote ``impression_id`` in every /feedback about it."""

    impression_id: str | None
    policy: str
    model_version: str
    items: list[SlateItem]


class FeedbackRequest(_Strict):
    """A reward in [0, 1] or an event (view, click, cart, purchase) for one shown item."""

    impression_id: Annotated[str, Field(min_length=1, max_length=MAX_IMPRESSION_ID)]
    item_id: ItemId
    reward: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    event: EventName | None = None

    @model_validator(mode="after")
    def _reward_or_event(self) -> FeedbackRequest:
        if (self.reward is None) == (self.event is None):
            raise ValueError("send exactly one of reward (a number in [0, 1]) or event (view, click, cart, purchase)")
        return self


class FeedbackResponse(BaseModel):
    """``accepted`` once the feedback is in the fsynced WAL; ``duplicate`` if this (impression, item) was seen."""

    status: Literal["accepted", "duplicate"]


class ItemIn(_Strict):
    """A product to add or update; the item tower embeds its text at once."""

    item_id: ItemId
    title: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    category: ShortText | None = None
    brand: ShortText | None = None
    price: float | None = Field(default=None, ge=0.0, le=1e12, allow_inf_nan=False)
    attributes: dict[ShortText, ShortText] = Field(default_factory=dict, max_length=MAX_ATTRIBUTES)


class ItemsRequest(_Strict):
    """A batch of products for ``PUT /items``."""

    items: list[ItemIn] = Field(min_length=1, max_length=MAX_ITEMS_PER_PUT)

    @model_validator(mode="after")
    def _unique_ids(self) -> ItemsRequest:
        ids = [item.item_id for item in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("items: each item_id may appear once per request")
        return self


class ItemsResponse(BaseModel):
    """How many products were added or updated and the catalog version that now contains them."""

    added: int
    updated: int
    catalog_version: int
