"""Review policies on the real broker (issue 26 item 0): the running detector, configured with an
approval gate on one client's posts (approve_all) and exceptions only for another's, publishes on
`exceptions` one approval item per post of the first (with its deadline) beside the rules' records,
and for the second the rules' records alone, though every post is sampled for audit by default."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loopgate.common.kafka import ensure_topics, read_topic
from loopgate.common.settings import Settings
from loopgate_schemas.exceptions import ExceptionRecord, exception_id_for
from loopgate_tools.processes import ServiceProcess, free_port, wait_until
from tests.fixtures.kafka import produce

pytestmark = pytest.mark.kafka

POSTS = 12
SCHEDULED = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
CONFIG = """
[sampling]
"content-pipeline.events" = 1.0   # every post would be an audit sample

[review."content-pipeline.events".northwind]
mode = "approve_all"
deadline_margin_minutes = 20

[review."content-pipeline.events".contoso]
mode = "exceptions_only"
"""


def post(client: str, i: int) -> tuple[bytes, bytes]:
    content_id = f"{client}-post-{i}"
    data: dict[str, Any] = {
        "content_id": content_id,
        "client_id": client,
        "platform": "instagram",
        "caption": f"Post {i} of the week",
        "model": "copywriter-v3",
        "model_confidence": 0.9,
        "brand_voice_score": 0.3 if i % 3 == 0 else 0.9,  # every third is off-voice: brand_voice fires
        "brand_safety_score": 0.95,
        "product_claims": [],
    }
    if i % 2 == 0:
        data["scheduled_at"] = (SCHEDULED + timedelta(hours=i)).isoformat()
    event = {
        "specversion": "1.0",
        "id": f"evt-{content_id}",
        "source": "contentgen/social",
        "type": "content.generated",
        "time": "2026-12-07T11:00:00Z",
        "subject": content_id,
        "data": data,
    }
    return content_id.encode(), json.dumps(event).encode()


def test_one_clients_posts_are_all_gated_while_anothers_are_exceptions_only(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    config = tmp_path / "detection.toml"
    config.write_text(CONFIG)
    settings = settings_factory(detection_config=config, detector_metrics_port=free_port())
    asyncio.run(ensure_topics(settings))
    detector = ServiceProcess.for_service("detector", settings, tmp_path).start()
    try:
        messages = [post(client, i) for client in ("northwind", "contoso") for i in range(POSTS)]
        asyncio.run(produce(settings, settings.content_topic, messages))
        expected = POSTS * 2 + 2 * (POSTS // 3)  # northwind: approval + audit each; brand_voice on both clients

        def published() -> list[ExceptionRecord]:
            assert detector.alive(), detector.log()[-3000:]
            found = asyncio.run(read_topic(settings, settings.exceptions_topic, poll_ms=200))
            return [ExceptionRecord.model_validate_json(m.value) for m in found if m.value]

        wait_until(lambda: len(published()) >= expected, timeout=120, what="every post's records", interval=1)
        records = published()
    finally:
        assert detector.stop() == 0

    by_client: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in records:
        assert r.client_id is not None
        by_client[r.client_id][r.rule_id].add(r.subject)
    northwind = [f"northwind-post-{i}" for i in range(POSTS)]
    off_voice = {i for i in range(POSTS) if i % 3 == 0}
    assert set(by_client["northwind"]) == {"approval_gate", "audit_sample", "brand_voice"}
    assert by_client["northwind"]["approval_gate"] == set(northwind)  # every post held
    assert by_client["northwind"]["brand_voice"] == {f"northwind-post-{i}" for i in off_voice}
    assert set(by_client["contoso"]) == {"brand_voice"}  # the rules alone: no audit sample, nothing held
    assert by_client["contoso"]["brand_voice"] == {f"contoso-post-{i}" for i in off_voice}
    assert len(records) == expected  # one record per firing, none twice

    items = {r.subject: r for r in records if r.rule_id == "approval_gate"}
    for i, subject in enumerate(northwind):
        item = items[subject]
        assert item.exception_id == exception_id_for(f"evt-{subject}", "approval_gate")
        assert item.kind == "approval"
        scheduled = SCHEDULED + timedelta(hours=i)
        assert item.deadline == (scheduled - timedelta(minutes=20) if i % 2 == 0 else None)
        assert item.observed["flags"] == (["brand_voice"] if i in off_voice else [])
