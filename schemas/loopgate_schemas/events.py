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

# Descriptions shared by several fields (they end up in the JSON Schema files upstream teams read).
_CLIENT_ID = (
    "The client (advertiser) the event is for: it selects the client's configuration (thresholds, the landing-domain "
    "allow-list) and is copied to every exception the event gives."
)
_CURRENCY = "ISO 4217 code of the amounts in this event, three capital letters (e.g. EUR)."
_BID_PLATFORM = "The buying platform: one of google_ads, dv360, meta, ttd, amazon_dsp."


class ContractModel(BaseModel):
    """Shared config: ignore unknown fields, strict types, immutable."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


# --- data payloads ---------------------------------------------------------------------------


class EventData(ContractModel):
    """What every upstream payload carries: the client it is for."""

    client_id: NonEmpty = Field(description=_CLIENT_ID)


class BidAdjustedData(EventData):
    """`data` of `bid.adjusted`: an automated bidder changed a bid."""

    campaign_id: NonEmpty = Field(
        description="The campaign; the message key and the event's `subject` (they must be equal)."
    )
    line_item_id: NonEmpty = Field(
        description="The line item whose bid changed: the subject of its bid_over_cap, bid_jump and bid_anomaly "
        "exceptions, and the key of the bid_anomaly baseline (online statistics kept per line item)."
    )
    client_id: NonEmpty = Field(description=_CLIENT_ID)
    platform: BidPlatform = Field(description=_BID_PLATFORM)
    bid_cpm: Money = Field(
        description="The new bid, cost per thousand impressions, in the currency's major unit (e.g. euros, not cents) "
        "as a finite JSON number, never negative. Read by bid_over_cap (bid_cpm > max_bid_cpm), bid_jump (bid_cpm / "
        "previous_bid_cpm above 2.0 or below 0.5 by default) and bid_anomaly (far outside this line item's own recent "
        "history)."
    )
    previous_bid_cpm: Money = Field(
        description="The bid before this change, cost per thousand impressions, in the currency's major unit (e.g. "
        "euros, not cents) as a finite JSON number, never negative. Read by bid_jump (not checked when 0)."
    )
    max_bid_cpm: Money = Field(
        description="The campaign's cap on bid_cpm, cost per thousand impressions, in the currency's major unit (e.g. "
        "euros, not cents) as a finite JSON number, never negative. Read by bid_over_cap."
    )
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = Field(description=_CURRENCY)
    strategy: str = Field(
        description="The bidding strategy that made the change (free text, e.g. target_cpa); shown to operators, read "
        "by no rule."
    )
    model_confidence: Rate = Field(
        description="The bidder model's confidence in this change, 0..1; audit sampling samples events below the "
        "configured low-confidence level at a higher rate (active learning: human effort goes where the model is least "
        "sure)."
    )


class BudgetPacingData(EventData):
    """`data` of `budget.pacing`: spend so far today for a campaign, published every few minutes."""

    campaign_id: NonEmpty = Field(
        description="The campaign; the message key and the event's `subject` (they must be equal); it is the subject "
        "of its overspend and pacing_off exceptions."
    )
    client_id: NonEmpty = Field(description=_CLIENT_ID)
    platform: BidPlatform = Field(description=_BID_PLATFORM)
    date: dt.date = Field(description="The day the spend is for, YYYY-MM-DD.")
    daily_budget: Money = Field(
        description="The campaign's budget for the day, in the currency's major unit (e.g. euros, not cents) as a "
        "finite JSON number, never negative. Read by overspend (spend_to_date > daily_budget)."
    )
    spend_to_date: Money = Field(
        description="Spend so far today, in the currency's major unit (e.g. euros, not cents) as a finite JSON number, "
        "never negative. Read by overspend and pacing_off (spend_to_date / expected_spend_to_date > 1.3 by default)."
    )
    expected_spend_to_date: Money = Field(
        description="What even pacing would have spent by now, in the currency's major unit (e.g. euros, not cents) as "
        "a finite JSON number, never negative. Read by pacing_off (not checked when 0)."
    )
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = Field(description=_CURRENCY)


class CampaignConstraintData(EventData):
    """`data` of `campaign.constraint_violated`: the bidder hit a constraint it cannot resolve."""

    campaign_id: NonEmpty = Field(
        description="The campaign; the message key and the event's `subject` (they must be equal); it is the subject "
        "of its constraint exception."
    )
    client_id: NonEmpty = Field(description=_CLIENT_ID)
    platform: BidPlatform = Field(description=_BID_PLATFORM)
    constraint: str = Field(
        description="The constraint the bidder hit and cannot resolve (free text, e.g. frequency_cap). Every such "
        "event raises a constraint exception: it is always a human's job."
    )
    detail: str = Field(description="What happened, in words, for the operator (free text).")


class PlacementTraffickedData(EventData):
    """`data` of `placement.trafficked`: a creative was attached to a placement on an ad server."""

    placement_id: NonEmpty = Field(
        description="The placement; the message key and the event's `subject` (they must be equal); the subject of its "
        "exceptions."
    )
    order_id: NonEmpty = Field(description="The order the placement belongs to.")
    client_id: NonEmpty = Field(description=_CLIENT_ID)
    creative_id: NonEmpty = Field(description="The creative attached to the placement.")
    ad_server: str = Field(description="The ad server the creative was trafficked on (free text, e.g. cm360).")
    flight_start: AwareDatetime = Field(
        description="When the placement starts serving, RFC 3339 with a UTC offset. Read by bad_flight (flight_end <= "
        "flight_start)."
    )
    flight_end: AwareDatetime = Field(
        description="When the placement stops serving, RFC 3339 with a UTC offset. Read by bad_flight (flight_end <= "
        "flight_start)."
    )
    click_url: str = Field(
        description="Where a click goes. Read by click_url: empty, or not starting with https://, raises an exception "
        "(any string is valid in the schema)."
    )
    landing_domain: str = Field(
        description="The domain the click lands on. Read by domain_not_allowed: not in the client's allow-list "
        "(configuration; a client with no allow-list is not checked)."
    )
    creative_width: Count = Field(
        description="The creative's width in pixels, a whole number, never negative, below 2^53. Read by size_mismatch "
        "(creative size differs from slot size)."
    )
    creative_height: Count = Field(
        description="The creative's height in pixels, a whole number, never negative, below 2^53. Read by "
        "size_mismatch."
    )
    slot_width: Count = Field(
        description="The ad slot's width in pixels, a whole number, never negative, below 2^53. Read by size_mismatch."
    )
    slot_height: Count = Field(
        description="The ad slot's height in pixels, a whole number, never negative, below 2^53. Read by size_mismatch."
    )
    tracking_pixels: list[str] = Field(
        description="Tracking pixel URLs of the placement; may be empty. Read by no rule."
    )


class DeliveryReportData(EventData):
    """`data` of `delivery.report`: hourly delivery of a placement."""

    placement_id: NonEmpty = Field(
        description="The placement; the message key and the event's `subject` (they must be equal); the subject of its "
        "exceptions and the key of its delivery_anomaly baseline."
    )
    order_id: NonEmpty = Field(description="The order the placement belongs to.")
    client_id: NonEmpty = Field(description=_CLIENT_ID)
    hour: AwareDatetime = Field(description="The hour this delivery is for, RFC 3339 with a UTC offset, on the hour.")
    impressions: Count = Field(
        description="Impressions served in the hour, a whole number, never negative, below 2^53. Read by "
        "delivery_stalled (0 while booked_impressions_per_hour > 0) and delivery_anomaly (impressions or CTR far "
        "outside this placement's own recent history)."
    )
    clicks: Count = Field(
        description="Clicks in the hour, a whole number, never negative, below 2^53. The CTR (clicks / impressions) is "
        "read by delivery_anomaly."
    )
    booked_impressions_per_hour: Count = Field(
        description="Impressions booked per hour, a whole number, never negative, below 2^53. Read by delivery_stalled."
    )


class ContentGeneratedData(EventData):
    """`data` of `content.generated`: a generative model produced a social post draft."""

    content_id: NonEmpty = Field(
        description="The draft post; the message key and the event's `subject` (they must be equal), and the subject "
        "of its exceptions."
    )
    client_id: NonEmpty = Field(description=_CLIENT_ID)
    platform: SocialPlatform = Field(
        description="The social platform the post is for: one of instagram, x, linkedin, tiktok, facebook. It sets "
        "caption_too_long's limit (by default x 280, instagram 2200, tiktok 2200, linkedin 3000, facebook 63206 "
        "characters)."
    )
    caption: str = Field(
        description="The post's text. Read by caption_too_long (longer than the platform's limit, in characters)."
    )
    model: str = Field(description="The generative model that wrote the draft (free text, e.g. copywriter-v3).")
    model_confidence: Rate = Field(
        description="The generative model's confidence in the draft, 0..1; audit sampling samples events below the "
        "configured low-confidence level at a higher rate (active learning: human effort goes where the model is least "
        "sure)."
    )
    brand_voice_score: Rate = Field(
        description="0..1, higher is more on-voice. Read by brand_voice (below 0.6 by default)."
    )
    brand_safety_score: Rate = Field(description="0..1, higher is safer. Read by brand_safety (below 0.7 by default).")
    product_claims: list[str] = Field(
        description="Claims the claim detector found in the caption; may be empty. Read by claim_verification: any "
        "claim routes the draft to the client's reviewers for fact checking."
    )


# --- envelopes -------------------------------------------------------------------------------


class CloudEvent(ContractModel):
    """The CloudEvents 1.0 attributes every upstream message carries."""

    specversion: Literal["1.0"] = Field(description='The CloudEvents version: always "1.0".')
    id: NonEmpty = Field(
        description="Unique per event: the idempotency key. Publishing the same event again (a retry, a replay) with "
        "the same id never gives a second exception; exception ids and audit sampling are derived from it."
    )
    source: NonEmpty = Field(description="The system that published the event (free text, e.g. bidder/ttd-eu-1).")
    type: str = Field(description="The event type; it selects the schema of `data`.")
    time: AwareDatetime = Field(
        description="When the event happened, RFC 3339 with a UTC offset (e.g. 2026-11-24T09:15:02Z)."
    )
    subject: NonEmpty = Field(
        description="The entity id, equal to the message key: the campaign_id on bid-management.events, the "
        "placement_id on trafficking.events, the content_id on content-pipeline.events."
    )
    data: EventData = Field(description="The event's payload; its fields depend on `type`.")


class BidAdjusted(CloudEvent):
    """`bid.adjusted` on bid-management.events (key: campaign_id): an automated bidder changed a bid."""

    type: Literal["bid.adjusted"] = Field(description="Always bid.adjusted: an automated bidder changed a bid.")
    data: BidAdjustedData = Field(description="The bid.adjusted payload (BidAdjustedData).")


class BudgetPacing(CloudEvent):
    """`budget.pacing` on bid-management.events (key: campaign_id): spend so far today for a campaign."""

    type: Literal["budget.pacing"] = Field(description="Always budget.pacing: spend so far today for a campaign.")
    data: BudgetPacingData = Field(description="The budget.pacing payload (BudgetPacingData).")


class CampaignConstraintViolated(CloudEvent):
    """`campaign.constraint_violated` on bid-management.events (key: campaign_id): the bidder hit a
    constraint it cannot resolve (always a human's job)."""

    type: Literal["campaign.constraint_violated"] = Field(
        description="Always campaign.constraint_violated: the bidder hit a constraint it cannot resolve."
    )
    data: CampaignConstraintData = Field(
        description="The campaign.constraint_violated payload (CampaignConstraintData)."
    )


class PlacementTrafficked(CloudEvent):
    """`placement.trafficked` on trafficking.events (key: placement_id): a creative was attached to a
    placement on an ad server."""

    type: Literal["placement.trafficked"] = Field(
        description="Always placement.trafficked: a creative was attached to a placement on an ad server."
    )
    data: PlacementTraffickedData = Field(description="The placement.trafficked payload (PlacementTraffickedData).")


class DeliveryReport(CloudEvent):
    """`delivery.report` on trafficking.events (key: placement_id): hourly delivery of a placement."""

    type: Literal["delivery.report"] = Field(description="Always delivery.report: hourly delivery of a placement.")
    data: DeliveryReportData = Field(description="The delivery.report payload (DeliveryReportData).")


class ContentGenerated(CloudEvent):
    """`content.generated` on content-pipeline.events (key: content_id): a generative model produced a
    social post draft."""

    type: Literal["content.generated"] = Field(
        description="Always content.generated: a generative model produced a social post draft."
    )
    data: ContentGeneratedData = Field(description="The content.generated payload (ContentGeneratedData).")


BidEvent: TypeAlias = Annotated[BidAdjusted | BudgetPacing | CampaignConstraintViolated, Field(discriminator="type")]
TraffickingEvent: TypeAlias = Annotated[PlacementTrafficked | DeliveryReport, Field(discriminator="type")]
ContentEvent: TypeAlias = Annotated[ContentGenerated, Field(discriminator="type")]
UpstreamEvent: TypeAlias = Annotated[
    BidAdjusted | BudgetPacing | CampaignConstraintViolated | PlacementTrafficked | DeliveryReport | ContentGenerated,
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
