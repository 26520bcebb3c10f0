"""One broker of a three-broker cluster SIGKILLed mid-stream and brought back later, while the
detector, the dispatcher and the API keep running: every topic at replication factor 3 and
min.insync.replicas 2 (faust's changelogs too), producers at acks=all, so the two brokers left
carry on and nothing is lost or doubled. The killed broker is the detector group's coordinator,
which also leads about a third of the partitions."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import pytest

from loopgate.common.kafka import check_topics, ensure_topics
from loopgate.detector.app import internal_topics
from loopgate_tools.processes import wait_until
from tests.chaos.harness import PUBLISH_SECONDS, SESSION_TIMEOUT_SECONDS, ChaosRun
from tests.fixtures.kafka_cluster import KafkaCluster
from tests.fixtures.services import Stack

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.chaos,
]

# Longer than the controller's broker session timeout (9 s), so the cluster fences the dead broker
# and moves its leaderships while events keep coming.
BROKER_DOWN_SECONDS = float(os.environ.get("LOOPGATE_CHAOS_BROKER_DOWN_SECONDS", "12"))


def test_one_of_three_brokers_sigkilled_mid_stream_and_brought_back(
    kafka_cluster: KafkaCluster,
    stack_factory: Callable[..., Stack],  # this order: the cluster outlives the services
) -> None:
    stack = stack_factory(
        kafka_bootstrap=kafka_cluster.bootstrap,
        replication_factor=3,
        min_insync_replicas=2,
        detector_session_timeout_seconds=SESSION_TIMEOUT_SECONDS,
    )
    s = stack.settings
    asyncio.run(ensure_topics(s))
    asyncio.run(ensure_topics(s, internal_topics(s), configs={"cleanup.policy": "compact"}))
    # RF 3 and min ISR 2 everywhere (once every broker has the new topics' configs: just after
    # creation one may still describe a changelog without them)
    wait_until(
        lambda: asyncio.run(check_topics(s, internal_topics(s))) == [],
        timeout=30,
        what="every topic at RF 3 and min.insync.replicas 2",
        interval=1.0,
    )
    for name in ("api", "detector", "dispatcher"):
        stack.start(name)
    chaos = ChaosRun(stack)
    # The coordinator is found before publishing starts (on a loaded machine the look-up takes
    # seconds), and the stream runs long enough to outlast the outage by a margin.
    victim = kafka_cluster.coordinator(s.group(s.detector_app_id))
    publisher = chaos.publish(seconds=PUBLISH_SECONDS + 2 * BROKER_DOWN_SECONDS)
    publisher.wait_share(0.2)
    kafka_cluster.kill(victim)
    time.sleep(BROKER_DOWN_SECONDS)  # events keep flowing to the two brokers left
    assert publisher.pulled < len(chaos.truth.events)  # the broker comes back mid-stream
    kafka_cluster.start()
    back_at = time.monotonic()
    publisher.join()
    row = chaos.measure(f"1 of 3 brokers SIGKILLed {BROKER_DOWN_SECONDS:.0f} s (RF 3, min ISR 2)", since=back_at)
    assert row.clean, row
    # The broker that came back caught up: every replica of every topic in sync again.
    topics = [*s.topic_partitions(), *internal_topics(s)]
    wait_until(
        lambda: all(size == 3 for sizes in kafka_cluster.in_sync(topics).values() for size in sizes),
        timeout=120,
        what=f"broker {victim} to rejoin every in-sync replica set",
        interval=1.0,
    )
