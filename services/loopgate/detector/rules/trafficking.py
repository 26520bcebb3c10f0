"""Rules on trafficking.events: bad flight, click URL, domain allow-list, size, delivery stalled."""

from __future__ import annotations

from loopgate.detector.config import DetectionConfig
from loopgate.detector.rules.base import Firing
from loopgate_schemas.events import DeliveryReport, PlacementTrafficked
from loopgate_schemas.exceptions import Kind


def check_placement_trafficked(event: PlacementTrafficked, config: DetectionConfig) -> list[Firing]:
    d = event.data
    t = config.thresholds_for(d.client_id)
    who = f"placement {d.placement_id} ({d.client_id}, creative {d.creative_id})"
    out: list[Firing] = []
    if d.flight_end <= d.flight_start:
        out.append(
            Firing(
                "bad_flight",
                Kind.THRESHOLD_BREACH,
                d.placement_id,
                f"Flight of {who} ends {d.flight_end.isoformat()} before it starts {d.flight_start.isoformat()}",
                {"flight_start": d.flight_start.isoformat(), "flight_end": d.flight_end.isoformat()},
                threshold={"flight_end": "> flight_start"},
            )
        )
    url = d.click_url.strip()
    if not url or (t.require_https_click_url and not url.lower().startswith("https://")):
        problem = "is missing" if not url else f"is not https: {url[:120]}"
        out.append(
            Firing(
                "click_url",
                Kind.POLICY,
                d.placement_id,
                f"Click URL of {who} {problem}",
                {"click_url": d.click_url[:500]},
                threshold={"scheme": "https"},
            )
        )
    allowed = config.allowed_domains_for(d.client_id)
    if allowed is not None and d.landing_domain.lower() not in allowed:
        out.append(
            Firing(
                "domain_not_allowed",
                Kind.POLICY,
                d.placement_id,
                f"Landing domain {d.landing_domain} of {who} is not on {d.client_id}'s allow-list",
                {"landing_domain": d.landing_domain},
                expected={"allowed_domains": sorted(allowed)},
            )
        )
    if (d.creative_width, d.creative_height) != (d.slot_width, d.slot_height):
        out.append(
            Firing(
                "size_mismatch",
                Kind.THRESHOLD_BREACH,
                d.placement_id,
                f"Creative {d.creative_id} is {d.creative_width}x{d.creative_height} but the slot of "
                f"placement {d.placement_id} ({d.client_id}) is {d.slot_width}x{d.slot_height}",
                {"creative_size": f"{d.creative_width}x{d.creative_height}"},
                expected={"slot_size": f"{d.slot_width}x{d.slot_height}"},
            )
        )
    return out


def check_delivery_report(event: DeliveryReport, config: DetectionConfig) -> list[Firing]:
    d = event.data
    # No impact: the report has impressions but no price, so a stalled hour's spend cannot be estimated.
    if d.impressions == 0 and d.booked_impressions_per_hour > 0:
        return [
            Firing(
                "delivery_stalled",
                Kind.THRESHOLD_BREACH,
                d.placement_id,
                f"Placement {d.placement_id} ({d.client_id}, order {d.order_id}) delivered 0 impressions "
                f"in the hour of {d.hour.isoformat()} against {d.booked_impressions_per_hour} booked",
                {"impressions": 0, "hour": d.hour.isoformat()},
                expected={"booked_impressions_per_hour": d.booked_impressions_per_hour},
            )
        ]
    return []
