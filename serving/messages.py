"""The messages of a /recommend and a /feedback, hop by hop: ingress -> scorer -> bandit -> ingress.

Every handle call of the serving graph takes and returns one of these dataclasses, and every
refusal is one of these exceptions, so a reader follows a request without guessing dict keys:

- the ingress sends the scorer a ``ScoreRequest`` (the validated body plus what the ingress knows
  about the catalog and the user's arm);
- the scorer answers ``Candidates``, which the ingress passes on to the bandit;
- the bandit answers a ``SlateReply``: the ``Slate`` (the /recommend JSON) and what the ingress
  keeps for the next request (the arms' routing table, the newest catalog version); or it raises
  ``FeaturesNeeded`` (the user's arm reads features the candidates came without: score again with
  them), ``Overloaded`` (429) or, for feedback, ``UnknownImpression`` (404) / ``ExpiredImpression``
  (410).

A deployment's exception reaches the caller wrapped by Ray (``RayTaskError.as_instanceof_cause()``:
an instance of both ``RayTaskError`` and the original class, whose ``str`` is Ray's trace), so
``except UnknownImpression`` works across a handle and ``unwrap`` gives the original message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recsys.policies import Context


# -- refusals that cross a handle ------------------------------------------------------------------
class UnknownImpression(LookupError):
    """Feedback names an impression (or an item of it) that was never served: HTTP 404."""


class ExpiredImpression(LookupError):
    """Feedback arrived after the reward window closed: HTTP 410."""


class Overloaded(RuntimeError):
    """Pending impressions hold more memory than ``max_pending_mb``: HTTP 429 until windows close."""


class FeaturesNeeded(LookupError):
    """The user's arm runs a linear policy and the candidates came without features: score again with them.

    Only after the arms changed (the ingress asks for features by the routing table it last saw);
    nothing was logged.
    """


def unwrap(err: BaseException) -> BaseException:
    """The deployment's own exception inside Ray's wrapper (``err`` itself when it is not wrapped)."""
    return getattr(err, "cause", None) or err


# -- the messages ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreRequest:
    """What the ingress asks the scorer for one /recommend (the validated body and two hints)."""

    user_id: int
    """The shopper."""
    history: list[int] = field(default_factory=list)
    """Items the user interacted with, oldest first."""
    history_events: list[str] | None = None
    """The event of each history item (view, click, cart, purchase); None = all clicks."""
    query: str | None = None
    """Free text: the only input BERT reads per request."""
    candidates: list[int] | None = None
    """Restrict the slate to these items; None = retrieve from the whole catalog."""
    exclude: list[int] = field(default_factory=list)
    """Items never to show."""
    catalog_version: int = 0
    """The newest catalog version the ingress has seen: a scorer behind it pulls the products it misses."""
    with_features: bool = True
    """Whether the user's arm reads neural-linear features (n x d floats: the bulk of Candidates)."""

    @classmethod
    def of(cls, body, catalog_version: int = 0, with_features: bool = True) -> ScoreRequest:
        """From a validated ``serving.api.RecommendRequest``."""
        return cls(body.user_id, list(body.history), body.history_events, body.query, body.candidates,
                   list(body.exclude), catalog_version, with_features)


@dataclass
class Candidates:
    """What the scorer hands the bandit for one request."""

    context: Context | None
    """Candidates with scores, neural-linear features and calibrated prior; None when nothing is left."""
    model_version: str
    """Which model scored them."""
    catalog_version: int
    """Which catalog version the scorer held."""
    user_vector: np.ndarray | None = None
    """The user tower's output the candidates were scored with (logged with the decision)."""


@dataclass(frozen=True)
class ArmRoute:
    """One A/B arm as the ingress routes by it."""

    weight: float
    """The arm's share of users (``serving.experiments.assign_arm``)."""
    reads_features: bool
    """Whether its policy is linear, so its users' candidates need features."""


@dataclass
class Slate:
    """The /recommend response body (``serving.api.RecommendResponse``)."""

    impression_id: str | None
    """Signed id to send back with feedback; None for an empty slate."""
    policy: str
    """The user's arm."""
    model_version: str
    """The model that scored the candidates."""
    items: list[dict]
    """``{item_id, position, score, propensity, explored}`` per shown item, in slate order."""

    def body(self) -> dict:
        """The JSON body."""
        return {"impression_id": self.impression_id, "policy": self.policy, "model_version": self.model_version,
                "items": self.items}


@dataclass
class SlateReply:
    """The bandit's answer to a slate request."""

    slate: Slate
    """What the shopper sees."""
    arms: list[ArmRoute]
    """The arms now configured, for the ingress's next ``ScoreRequest.with_features``."""
    catalog_version: int
    """The newest catalog version, for the ingress's next ``ScoreRequest.catalog_version``."""
