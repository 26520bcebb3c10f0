"""`loopgate topics create` on the real broker: Loopgate's own topics (and the detector's
changelogs), replicated as the settings say; upstream topics only when asked; and every existing
topic checked against what the detector needs, each mismatch named."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from loopgate.common.kafka import KafkaStartupError, check_topics, describe_topics, ensure_topics
from loopgate.common.settings import Settings
from loopgate.detector.app import internal_topics

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.kafka


def topics_create(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LOOPGATE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LOOPGATE_TOPIC_PREFIX": settings.topic_prefix,
    }
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "loopgate"), "topics", "create", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_own_topics_get_the_replication_settings(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(min_insync_replicas=1)
    await ensure_topics(settings, settings.own_topic_partitions())
    state = await describe_topics(settings, list(settings.own_topic_partitions()))
    assert {name: s.partitions for name, s in state.items()} == settings.own_topic_partitions()
    assert all(s.replication_factor == 1 and s.configs["min.insync.replicas"] == "1" for s in state.values())


async def test_a_replication_factor_above_the_brokers_is_a_clear_error(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(replication_factor=3, min_insync_replicas=2)
    with pytest.raises(KafkaStartupError, match="LOOPGATE_REPLICATION_FACTOR is 3"):
        await ensure_topics(settings, {settings.exceptions_topic: 1})


def test_topics_create_leaves_upstream_topics_to_their_teams_and_says_they_are_missing(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory()
    done = topics_create(settings)
    assert done.returncode == 1, done.stderr
    for name in settings.upstream_topics():
        assert f"{name}: does not exist; its upstream team creates it" in done.stderr
    assert "Traceback" not in done.stderr
    import asyncio

    existing = asyncio.run(describe_topics(settings, [*settings.topic_partitions(), *internal_topics(settings)]))
    assert set(existing) == {*settings.own_topic_partitions(), *internal_topics(settings)}

    with_upstream = topics_create(settings, "--with-upstream")
    assert with_upstream.returncode == 0, with_upstream.stderr


async def test_an_upstream_topic_with_another_partition_count_is_reported_naming_the_setting(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(upstream_partitions=3)
    await ensure_topics(settings, {settings.bids_topic: 2, settings.trafficking_topic: 3, settings.content_topic: 3})
    await ensure_topics(settings, settings.own_topic_partitions())
    problems = await check_topics(settings, internal_topics(settings))
    assert problems == [
        f"{settings.bids_topic}: 2 partitions, but LOOPGATE_UPSTREAM_PARTITIONS is 3; the detector's baseline "
        "tables are co-partitioned with it: set LOOPGATE_UPSTREAM_PARTITIONS=2 (every upstream topic must have "
        "the same count)"
    ]


async def test_topics_less_replicated_than_the_settings_are_reported(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    await ensure_topics(settings)
    stricter = settings.model_copy(update={"replication_factor": 3, "min_insync_replicas": 2})
    problems = await check_topics(stricter)
    own = settings.own_topic_partitions()
    assert len(problems) == 2 * len(own)
    for name in own:
        assert f"{name}: replication factor 1, below LOOPGATE_REPLICATION_FACTOR (3); add replicas" in "\n".join(
            problems
        )
        assert f"{name}: min.insync.replicas 1, below LOOPGATE_MIN_INSYNC_REPLICAS (2)" in "\n".join(problems)
