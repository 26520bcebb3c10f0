"""Rules on content-pipeline.events: caption length, brand safety, brand voice, claims."""

from __future__ import annotations

from loopgate.detector.config import DetectionConfig
from loopgate.detector.rules.base import Firing
from loopgate_schemas.events import ContentGenerated
from loopgate_schemas.exceptions import Kind


def check_content_generated(event: ContentGenerated, config: DetectionConfig) -> list[Firing]:
    d = event.data
    t = config.thresholds_for(d.client_id, d.platform)
    who = f"{d.content_id} ({d.client_id}, {d.platform}, {d.model})"
    out: list[Firing] = []
    limit = config.caption_limits.get(d.platform)
    if limit is not None and len(d.caption) > limit:
        out.append(
            Firing(
                "caption_too_long",
                Kind.POLICY,
                d.content_id,
                f"Caption of {who} is {len(d.caption)} characters, over the {d.platform} limit of {limit}",
                {"caption_length": len(d.caption)},
                threshold={"max_length": limit},
                score=round(len(d.caption) / limit, 4),
            )
        )
    if d.brand_safety_score < t.brand_safety_min:
        out.append(
            Firing(
                "brand_safety",
                Kind.POLICY,
                d.content_id,
                f"Brand safety score {d.brand_safety_score:.2f} of {who} is below {t.brand_safety_min}",
                {"brand_safety_score": d.brand_safety_score},
                threshold={"brand_safety_min": t.brand_safety_min},
                score=d.brand_safety_score,
            )
        )
    if d.brand_voice_score < t.brand_voice_min:
        out.append(
            Firing(
                "brand_voice",
                Kind.POLICY,
                d.content_id,
                f"Brand voice score {d.brand_voice_score:.2f} of {who} is below {t.brand_voice_min}",
                {"brand_voice_score": d.brand_voice_score},
                threshold={"brand_voice_min": t.brand_voice_min},
                score=d.brand_voice_score,
            )
        )
    if d.product_claims:
        claims = ", ".join(f'"{c}"' for c in d.product_claims[:5])
        out.append(
            Firing(
                "claim_verification",
                Kind.POLICY,
                d.content_id,
                f"{len(d.product_claims)} product claim(s) in {who} need fact checking by {d.client_id}: {claims}",
                {"product_claims": list(d.product_claims)},
            )
        )
    return out
