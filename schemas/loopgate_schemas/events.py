"""Upstream events: CloudEvents 1.0 in JSON structured mode, `data` validated per `type`.

Unknown extra attributes and `data` fields are ignored (upstream adds fields without notice);
a missing required field or a wrong type is a schema violation reported with the field's path.
Numbers are strict: a JSON string is never read as a number. Numbers are safe by construction:
every one is finite (`1e309` parses to infinity and is refused), money, bids, counts and sizes are
never negative, and counts are integers below 2^53 (exact in every JSON reader), so no value
outside these bounds reaches a rule or an anomaly baseline.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from loopgate_schemas import topics

MAX_COUNT = 2**53  # counts at or above it lose precision as JSON numbers (contract)

Rate = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Money = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, lt=MAX_COUNT)]
NonEmpty = Annotated[str, Field(min_length=1)]

BidPlatform = Literal["google_ads", "dv360", "meta", "ttd", "amazon_dsp"]
SocialPlatform = Literal["instagram", "x", "linkedin", "tiktok", "facebook"]


class ContractModel(BaseModel):
    """Shared config: ignore unknown fields, strict types, immutable."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


# --- data payloads ---------------------------------------------------------------------------


class EventData(ContractModel):
    """What every upstream payload carries: the client it is for."""

    client_id: NonEmpty


class BidAdjustedData(EventData):
    campaign_id: NonEmpty
    line_item_id: NonEmpty
    client_id: NonEmpty
    platform: BidPlatform
    bid_cpm: Money
    previous_bid_cpm: Money
    max_bid_cpm: Money
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    strategy: str
    model_confidence: Rate


class BudgetPacingData(EventData):
    campaign_id: NonEmpty
    client_id: NonEmpty
    platform: BidPlatform
    date: dt.date
    daily_budget: Money
    spend_to_date: Money
    expected_spend_to_date: Money
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class CampaignConstraintData(EventData):
    campaign_id: NonEmpty
    client_id: NonEmpty
    platform: BidPlatform
    constraint: str
    detail: str


class PlacementTraffickedData(EventData):
    placement_id: NonEmpty
    order_id: NonEmpty
    client_id: NonEmpty
    creative_id: NonEmpty
    ad_server: str
    flight_start: AwareDatetime
    flight_end: AwareDatetime
    click_url: str
    landing_domain: str
    creative_width: Count
    creative_height: Count
    slot_width: Count
    slot_height: Count
    tracking_pixels: list[str]


class DeliveryReportData(EventData):
    placement_id: NonEmpty
    order_id: NonEmpty
    client_id: NonEmpty
    hour: AwareDatetime
    impressions: Count
    clicks: Count
    booked_impressions_per_hour: Count


class ContentGeneratedData(EventData):
    content_id: NonEmpty
    client_id: NonEmpty
    platform: SocialPlatform
    caption: str
    model: str
    model_confidence: Rate
    brand_voice_score: Rate
    brand_safety_score: Rate
    product_claims: list[str]


# --- envelopes -------------------------------------------------------------------------------


class CloudEvent(ContractModel):
    """The CloudEvents 1.0 attributes every upstream message carries."""

    specversion: Literal["1.0"]
    id: NonEmpty
    source: NonEmpty
    type: str
    time: AwareDatetime
    subject: NonEmpty
    data: EventData


class BidAdjusted(CloudEvent):
    type: Literal["bid.adjusted"]
    data: BidAdjustedData


class BudgetPacing(CloudEvent):
    type: Literal["budget.pacing"]
    data: BudgetPacingData


class CampaignConstraintViolated(CloudEvent):
    type: Literal["campaign.constraint_violated"]
    data: CampaignConstraintData


class PlacementTrafficked(CloudEvent):
    type: Literal["placement.trafficked"]
    data: PlacementTraffickedData


class DeliveryReport(CloudEvent):
    type: Literal["delivery.report"]
    data: DeliveryReportData


class ContentGenerated(CloudEvent):
    type: Literal["content.generated"]
    data: ContentGeneratedData


BidEvent: TypeAlias = Annotated[
    BidAdjusted | BudgetPacing | CampaignConstraintViolated, Field(discriminator="type")
]
TraffickingEvent: TypeAlias = Annotated[PlacementTrafficked | DeliveryReport, Field(discriminator="type")]
ContentEvent: TypeAlias = Annotated[ContentGenerated, Field(discriminator="type")]
UpstreamEvent: TypeAlias = Annotated[
    BidAdjusted
    | BudgetPacing
    | CampaignConstraintViolated
    | PlacementTrafficked
    | DeliveryReport
    | ContentGenerated,
    Field(discriminator="type"),
]

EVENT_MODELS: dict[str, type[CloudEvent]] = {
    m.model_fields["type"].annotation.__args__[0]: m  # type: ignore[union-attr]
    for m in (
        BidAdjusted,
        BudgetPacing,
        CampaignConstraintViolated,
        PlacementTrafficked,
        DeliveryReport,
        ContentGenerated,
    )
}

_ADAPTERS: dict[str, TypeAdapter[CloudEvent]] = {
    topics.BIDS: TypeAdapter(BidEvent),
    topics.TRAFFICKING: TypeAdapter(TraffickingEvent),
    topics.CONTENT: TypeAdapter(ContentEvent),
}
ANY_EVENT: TypeAdapter[CloudEvent] = TypeAdapter(UpstreamEvent)


class EventRejected(Exception):
    """A message that is not a valid event of its topic. `kind` is a short, bounded label
    (for metrics and grouping); `reason` names the field and the problem."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


_ERROR_KINDS = {
    "json_invalid": "invalid_json",
    "json_type": "invalid_json",
    "union_tag_invalid": "unknown_type",
    "union_tag_not_found": "missing_field",
    "missing": "missing_field",
    "model_type": "wrong_type",
    "model_attributes_type": "wrong_type",
}


MAX_SHOWN_TYPE = 64


def _describe(err: ValidationError) -> EventRejected:
    first = err.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith(tuple(EVENT_MODELS)))
    kind = _ERROR_KINDS.get(first["type"], "wrong_type" if first["type"].endswith("_type") else "invalid_value")
    if first["type"] == "union_tag_invalid":
        tag = str(first.get("ctx", {}).get("tag"))
        shown = tag if len(tag) <= MAX_SHOWN_TYPE else tag[:MAX_SHOWN_TYPE] + "..."  # it is the sender's text
        reason = f"type: unknown event type {shown!r} for this topic"
    elif first["type"].startswith("json"):
        reason = f"not a JSON object: {first['msg']}"
    else:
        reason = f"{loc or '<root>'}: {first['msg']}"
    more = err.error_count() - 1
    if more:
        reason += f" (and {more} more error{'s' if more > 1 else ''})"
    return EventRejected(kind, reason)


def parse_event(topic: str, value: bytes | str, *, max_bytes: int | None = None) -> CloudEvent:
    """Validate one message value as an event of `topic`; raise EventRejected otherwise."""
    if value is None or len(value) == 0:
        raise EventRejected("empty", "empty message value")
    if max_bytes is not None and len(value) > max_bytes:
        raise EventRejected("too_large", f"message of {len(value)} bytes exceeds the maximum of {max_bytes}")
    adapter = _ADAPTERS.get(topic, ANY_EVENT)
    try:
        return adapter.validate_json(value)
    except ValidationError as err:
        raise _describe(err) from None
    except UnicodeDecodeError:  # pragma: no cover - validate_json reports bad UTF-8 itself
        raise EventRejected("invalid_json", "value is not valid UTF-8") from None
