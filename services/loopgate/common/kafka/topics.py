"""Topic administration: creating Loopgate's topics with explicit partitions and durability,
checking existing ones against the settings, listing partitions, reading a topic from the start and
deleting a run's topics (the last two serve the tests and tools)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    TopicAlreadyExistsError,
)

from loopgate.common.kafka.clients import admin_client, consumer
from loopgate.common.kafka.connection import KafkaSettingsError, KafkaStartupError, KafkaTarget
from loopgate.common.settings import Settings

log = logging.getLogger(__name__)


COMPACTED = {"cleanup.policy": "compact"}


def replication_configs(settings: Settings) -> dict[str, str]:
    """The durability every topic Loopgate creates gets: with producers at acks=all, a write is
    acknowledged once `min.insync.replicas` replicas hold it."""
    if settings.min_insync_replicas > settings.replication_factor:
        raise KafkaSettingsError(
            "min_insync_replicas",
            f"{settings.min_insync_replicas} is more than LOOPGATE_REPLICATION_FACTOR ({settings.replication_factor}): "
            "no write could ever be acknowledged",
        )
    return {"min.insync.replicas": str(settings.min_insync_replicas)}


async def ensure_topics(
    settings: Settings, wanted: dict[str, int] | None = None, *, configs: dict[str, str] | None = None
) -> dict[str, int]:
    """Create the topics that do not exist yet, with explicit partition counts, the replication
    factor and min.insync.replicas of the settings (every Loopgate topic, upstream ones included,
    unless `wanted` is given), and wait until each partition has a leader."""
    wanted = settings.topic_partitions() if wanted is None else wanted
    topic_configs = {**replication_configs(settings), **(configs or {})}
    admin = admin_client(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, n, settings.replication_factor, topic_configs=topic_configs)
            for name, n in wanted.items()
            if name not in existing
        ]
        if missing:
            try:
                response = await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
            else:
                topic_errors: list[Any] = getattr(response, "topic_errors", [])
                refused = [(t[0], t[1], t[2] if len(t) > 2 else "") for t in topic_errors if t[1] not in (0, 36)]
                if refused:
                    raise KafkaStartupError(
                        "; ".join(
                            f"cannot create topic {name}: error {code} {message}" for name, code, message in refused
                        )
                        + f" (LOOPGATE_REPLICATION_FACTOR is {settings.replication_factor}: no more than the brokers)"
                    )
            log.info("created topics %s", [t.name for t in missing])
        for _ in range(100):  # fresh partitions get their leader shortly after creation
            described = await admin.describe_topics(list(wanted))
            if all(
                not d.get("error_code") and d["partitions"] and all(p["leader"] >= 0 for p in d["partitions"])
                for d in described
            ):
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    return wanted


@dataclass(frozen=True)
class TopicState:
    partitions: int
    replication_factor: int
    configs: dict[str, str]


async def describe_topics(where: KafkaTarget, names: list[str]) -> dict[str, TopicState]:
    """Partitions, replication factor and configuration of each named topic that exists."""
    admin = admin_client(where)
    await admin.start()
    try:
        described = [d for d in await admin.describe_topics(names) if not d.get("error_code")]
        if not described:
            return {}
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, d["topic"]) for d in described]
        )
    finally:
        await admin.close()
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        resources: list[Any] = getattr(response, "resources", [])
        for resource in resources:
            configs[resource[3]] = {entry[0]: entry[1] for entry in resource[4]}
    return {
        d["topic"]: TopicState(
            partitions=len(d["partitions"]),
            replication_factor=min((len(p["replicas"]) for p in d["partitions"]), default=0),
            configs=configs.get(d["topic"], {}),
        )
        for d in described
    }


async def check_topics(settings: Settings, changelogs: dict[str, int] | None = None) -> list[str]:
    """What in the existing topics does not fit what Loopgate needs, one line each naming the topic
    and the setting: an empty list when everything fits.

    Upstream topics must have LOOPGATE_UPSTREAM_PARTITIONS partitions, as the detector's baseline
    tables are co-partitioned with them (so must its changelogs); the topics Loopgate writes must
    be replicated as the settings say, and their min.insync.replicas at least the setting."""
    own = settings.own_topic_partitions()
    changelogs = changelogs or {}
    upstream = settings.upstream_topics()
    state = await describe_topics(settings, [*upstream, *own, *changelogs])
    problems: list[str] = []
    for name in upstream:
        topic = state.get(name)
        if topic is None:
            problems.append(
                f"{name}: does not exist; its upstream team creates it (or `loopgate topics create --with-upstream`)"
            )
        elif topic.partitions != settings.upstream_partitions:
            problems.append(
                f"{name}: {topic.partitions} partitions, but LOOPGATE_UPSTREAM_PARTITIONS is "
                f"{settings.upstream_partitions}; the detector's baseline tables are co-partitioned with it: set "
                f"LOOPGATE_UPSTREAM_PARTITIONS={topic.partitions} (every upstream topic must have the same count)"
            )
    for name, partitions in changelogs.items():
        topic = state.get(name)
        if topic is not None and topic.partitions != partitions:
            problems.append(
                f"{name}: {topic.partitions} partitions, but the detector's table needs {partitions} "
                "(LOOPGATE_UPSTREAM_PARTITIONS): faust refuses it; recreate the changelog (the baselines rebuild)"
            )
    for name in [*own, *changelogs]:
        topic = state.get(name)
        if topic is None:
            continue
        if topic.replication_factor < settings.replication_factor:
            problems.append(
                f"{name}: replication factor {topic.replication_factor}, below LOOPGATE_REPLICATION_FACTOR "
                f"({settings.replication_factor}); add replicas with kafka-reassign-partitions"
            )
        min_isr = int(topic.configs.get("min.insync.replicas", "1") or 1)
        if min_isr < settings.min_insync_replicas:
            problems.append(
                f"{name}: min.insync.replicas {min_isr}, below LOOPGATE_MIN_INSYNC_REPLICAS "
                f"({settings.min_insync_replicas}); kafka-configs --alter --add-config "
                f"min.insync.replicas={settings.min_insync_replicas}"
            )
    return problems


async def delete_topics_with_prefix(where: KafkaTarget, prefix: str) -> list[str]:
    """Delete every topic whose name starts with `prefix` (tests clean up what they made)."""
    if not prefix:
        raise ValueError("refusing to delete topics without a prefix")
    admin = admin_client(where)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


async def topic_partitions(where: KafkaTarget, names: list[str]) -> list[TopicPartition]:
    """Every partition of the named topics that exist (missing topics have none)."""
    admin = admin_client(where)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return [
        TopicPartition(d["topic"], p["partition"])
        for d in described
        if not d.get("error_code")
        for p in sorted(d["partitions"], key=lambda p: p["partition"])
    ]


async def read_topic(where: KafkaTarget, topic: str, *, poll_ms: int = 1000) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record currently in `topic`, from the beginning (no consumer group, no commits)."""
    tps = await topic_partitions(where, [topic])
    if not tps:
        return []
    reader = consumer(where, enable_auto_commit=False)
    await reader.start()
    try:
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        end = await reader.end_offsets(tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in tps if await reader.position(tp) < end[tp]]:
            batch = await reader.getmany(timeout_ms=poll_ms)
            for tp, msgs in batch.items():
                records.extend(m for m in msgs if m.offset < end[tp])
        return records
    finally:
        await reader.stop()
