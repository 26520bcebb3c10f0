"""What the console's browser tests and the ops CLI's tests share: exceptions worth working,
created through the real API as the dispatcher would, and the outcomes read back from Kafka."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson

from loopgate.common.kafka import read_topic
from tests.fixtures.api import record
from tests.fixtures.services import Stack

BRAND_SAFETY_CAPTION = "Glow all day with Lumen serum. Clinically proven to erase wrinkles overnight! #ad"


def brand_safety_record(**overrides: Any) -> dict[str, Any]:
    """A brand_safety exception on a generated post, with a product claim to verify."""
    uid = uuid.uuid4().hex[:8]
    data = {
        "content_id": f"post-{uid}",
        "client_id": "lumen",
        "platform": "instagram",
        "caption": BRAND_SAFETY_CAPTION,
        "model": "copywriter-v3",
        "model_confidence": 0.62,
        "brand_voice_score": 0.81,
        "brand_safety_score": 0.41,
        "product_claims": ["clinically proven"],
    }
    values: dict[str, Any] = dict(
        fingerprint=f"brand_safety:post-{uid}",
        kind="policy",
        rule_id="brand_safety",
        severity="high",
        source="content-pipeline.events",
        event_type="content.generated",
        subject=data["content_id"],
        client_id="lumen",
        summary=f"Brand safety score 0.41 of post-{uid} (lumen, instagram, copywriter-v3) is below 0.7",
        observed={"brand_safety_score": 0.41},
        threshold={"brand_safety_min": 0.7},
        score=0.41,
        event={"id": f"evt-{uid}", "type": "content.generated", "source": "content-pipeline", "data": data},
        event_ref={"topic": "content-pipeline.events", "partition": 0, "offset": 7},
    )
    return record(**{**values, **overrides})


def create(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    """Create as the dispatcher would; the exception as an operator reads it."""
    with stack.client(stack.service_token) as http:
        response = http.post("/v1/exceptions", json=body)
    assert response.status_code == 201, response.text
    with stack.client(stack.operator_token) as http:
        read = http.get(response.headers["Location"])
    assert read.status_code == 200, read.text
    created: dict[str, Any] = read.json()
    return created


def outcomes_of(stack: Stack, exception_id: str) -> list[dict[str, Any]]:
    """The outcome CloudEvents on exception-outcomes for one exception."""
    messages = asyncio.run(read_topic(stack.settings, stack.settings.outcomes_topic))
    found = [orjson.loads(m.value) for m in messages if m.key == exception_id.encode()]
    return found
