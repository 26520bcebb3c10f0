"""The second-review policy (TOML, strict like the routes file): which resolutions a second person
re-reviews blind, and which queue adjudicates when the two disagree.

    lead_queue = "leads"          # disagreements become exceptions of their own, routed here
    first_resolutions = 20        # every resolution of an operator's first 20 is re-reviewed
    default_share = 0.05          # otherwise this share of resolutions...
    [[shares]]                    # ...unless the first matching entry says otherwise
    rule = ["bid_over_cap"]       # matchers (any of the values), each optional: rule, queue
    share = 0.25

Loaded when the API starts (LOOPGATE_REVIEW_FILE; unset: the packaged review.toml, which reviews
nothing): an unknown key or a bad value refuses to start, naming the key. `chosen` is the pure
decision the resolve transaction asks (selection.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from loopgate.common.errors import LoopgateError
from loopgate.common.strict_toml import Strict, load_toml
from loopgate.resolution_api.queues.routing import _QUEUE, MAX_QUEUE_LENGTH

DEFAULT_REVIEW_PATH = Path(__file__).with_name("review.toml")
MAX_FIRST_RESOLUTIONS = 10_000

Matcher = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Share = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)]  # "0.5" is a typo, refused


class ShareOf(Strict):
    """One share: the resolutions it matches (every matcher given must hold) are re-reviewed at `share`."""

    name: str = Field(default="", max_length=255, description="For people reading the file and the logs")
    rule: list[Matcher] | None = None
    queue: list[Matcher] | None = None
    share: Share

    @model_validator(mode="after")
    def _valid(self) -> Self:
        for name in ("rule", "queue"):
            if getattr(self, name) == []:
                raise ValueError(f"{name}: an empty list matches nothing; leave it out to match everything")
        return self

    def matches(self, rule_id: str, queue: str) -> bool:
        return (self.rule is None or rule_id in self.rule) and (self.queue is None or queue in self.queue)


class ReviewPolicy(Strict):
    lead_queue: str = Field(default="leads", min_length=1, max_length=MAX_QUEUE_LENGTH)
    first_resolutions: int = Field(default=0, ge=0, le=MAX_FIRST_RESOLUTIONS, strict=True)
    default_share: Share = 0.0
    shares: list[ShareOf] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _valid(self) -> Self:
        if not _QUEUE.fullmatch(self.lead_queue):
            raise ValueError(
                f"lead_queue {self.lead_queue!r}: a queue name starts with a letter or digit, then letters, digits "
                "or . _ : / -"
            )
        return self

    def share_for(self, rule_id: str, queue: str) -> float:
        return next((s.share for s in self.shares if s.matches(rule_id, queue)), self.default_share)

    @property
    def reviews_nothing(self) -> bool:
        return self.first_resolutions == 0 and self.default_share == 0.0 and all(s.share == 0.0 for s in self.shares)


NOTHING_REVIEWED = ReviewPolicy()


def unit_hash(key: str) -> float:
    """A uniform number in [0, 1) from `key` alone: the same resolution is always chosen or not."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


def chosen(
    policy: ReviewPolicy, *, exception_id: str, resolution_count: int, rule_id: str, queue: str, resolver_prior: int
) -> str | None:
    """Why this resolution goes to a second reviewer ("first_resolutions" or "share"), or None.
    `resolver_prior`: how many resolutions the resolver made before this one."""
    if resolver_prior < policy.first_resolutions:
        return "first_resolutions"
    share = policy.share_for(rule_id, queue)
    if share > 0.0 and unit_hash(f"{exception_id}:{resolution_count}") < share:
        return "share"
    return None


class ReviewConfigError(LoopgateError):
    """The review file cannot be used; the message names the key."""


def load_review_policy(path: Path | None = None) -> ReviewPolicy:
    return load_toml(path or DEFAULT_REVIEW_PATH, ReviewPolicy, error=ReviewConfigError)
