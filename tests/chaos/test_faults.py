"""Faults injected while events flow, each against the real broker and the real service processes:
every scenario must end with every expected exception record in the API, none lost, none doubled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson
import pytest

from loopgate.common.kafka import ensure_topics
from loopgate_tools.processes import wait_until
from tests.chaos.harness import (
    API_OUTAGE_SECONDS,
    PUBLISH_SECONDS,
    SESSION_TIMEOUT_SECONDS,
    ChaosRun,
    PrivateBroker,
    graceful_stop,
    halves,
    scrape,
    total,
)
from tests.fixtures.api import record
from tests.fixtures.kafka import produce
from tests.fixtures.services import Stack

pytestmark = [pytest.mark.kafka, pytest.mark.chaos]

BROKER_DOWN_SECONDS = 5.0


def test_detector_sigkilled_mid_stream_and_restarted(chaos: ChaosRun) -> None:
    publisher = chaos.publish()
    publisher.wait_share(0.4)
    chaos.stack.processes["detector"].kill()
    chaos.stack.start("detector")
    publisher.join()
    row = chaos.measure("detector SIGKILL mid-stream, restarted", since=time.monotonic())
    assert row.clean, row


def test_dispatcher_sigkilled_mid_delivery_and_restarted(chaos: ChaosRun) -> None:
    publisher = chaos.publish()
    with chaos.stack.client() as http:
        wait_until(
            lambda: len(http.get("/v1/exceptions", params={"limit": 20}).json()["items"]) >= 10,
            timeout=120,
            what="the dispatcher to be delivering",
            interval=0.1,
        )
    chaos.stack.processes["dispatcher"].kill()
    chaos.stack.start("dispatcher")
    publisher.join()
    row = chaos.measure("dispatcher SIGKILL mid-delivery, restarted", since=time.monotonic())
    assert row.clean, row


def test_api_down_while_exceptions_keep_coming_then_the_backlog_is_delivered(chaos: ChaosRun) -> None:
    port = chaos.settings.dispatcher_metrics_port
    publisher = chaos.publish(seconds=API_OUTAGE_SECONDS + PUBLISH_SECONDS)
    publisher.wait_share(0.2)
    down_at = time.monotonic()
    assert graceful_stop(chaos.stack.processes["api"])[0] == 0
    chaos.expect_running = ("detector", "dispatcher")

    # The dispatcher keeps trying (connection refused) with capped backoff, and commits nothing.
    def retried() -> bool:
        return total(scrape(port), "loopgate_exceptions_delivery_failed_total", reason="unavailable") >= 3

    wait_until(
        retried, timeout=API_OUTAGE_SECONDS, what="the dispatcher to retry against the stopped API", interval=0.2
    )
    time.sleep(max(0.0, down_at + API_OUTAGE_SECONDS - time.monotonic()))  # the outage itself
    assert chaos.lags()[1] > 0  # a backlog built up behind the outage
    chaos.stack.start("api")
    chaos.expect_running = ("api", "detector", "dispatcher")
    back_at = time.monotonic()
    publisher.join()
    row = chaos.measure(f"API down {API_OUTAGE_SECONDS:.0f} s", since=back_at)
    assert row.clean, row
    delivered = total(scrape(port), "loopgate_exceptions_delivered_total")
    assert delivered >= row.expected  # every record through this one dispatcher (duplicates answer 200)


def test_a_record_the_api_rejects_for_good_is_dead_lettered_and_the_rest_delivered(chaos: ChaosRun) -> None:
    s = chaos.settings
    bad = orjson.dumps(record(exception_id="chaos-unacceptable", severity="catastrophic"))
    first, second = halves(chaos.truth.events)
    chaos.publish_now(first, seconds=PUBLISH_SECONDS / 2)
    asyncio.run(produce(s, s.exceptions_topic, [(b"chaos-unacceptable", bad)]))
    chaos.publish_now(second, seconds=PUBLISH_SECONDS / 2)
    row = chaos.measure("API rejects one record (422)", since=time.monotonic())
    assert row.clean, row
    [dead] = chaos.topic(s.exceptions_dlq_topic)
    headers = {k: v.decode() for k, v in dead.headers}
    assert (dead.key, dead.value) == (b"chaos-unacceptable", bad)
    assert headers["api-status"] == "422"
    assert "severity" in headers["error"]
    assert headers["source-topic"] == s.exceptions_topic
    with chaos.stack.client() as http:
        assert http.get("/v1/exceptions/chaos-unacceptable").status_code == 404


def test_broker_stopped_and_started_mid_stream_every_service_reconnects(
    private_broker: PrivateBroker,
    stack_factory: Callable[..., Stack],  # this order: the broker stops last
) -> None:
    stack = stack_factory(
        kafka_bootstrap=private_broker.bootstrap, detector_session_timeout_seconds=SESSION_TIMEOUT_SECONDS
    )
    asyncio.run(ensure_topics(stack.settings))
    for name in ("api", "detector", "dispatcher"):
        stack.start(name)
    chaos = ChaosRun(stack)
    first, second = halves(chaos.truth.events)
    publisher = chaos.publish(first, seconds=PUBLISH_SECONDS / 2)
    with stack.client() as http:  # the detector and the dispatcher are at work
        wait_until(
            lambda: len(http.get("/v1/exceptions", params={"limit": 20}).json()["items"]) >= 10,
            timeout=120,
            what="exceptions to reach the API",
            interval=0.1,
        )
    publisher.join()
    private_broker.stop()  # graceful: the controller and the broker shut down as in a rolling upgrade
    down_at = time.monotonic()
    # A service (re)started while Kafka is away waits for it rather than exiting.
    stack.processes["dispatcher"].kill()
    dispatcher = stack.start("dispatcher")
    wait_until(
        lambda: "does not answer yet" in dispatcher.log(),
        timeout=60,
        what="the restarted dispatcher to wait for the broker",
        interval=0.2,
    )
    time.sleep(max(0.0, down_at + BROKER_DOWN_SECONDS - time.monotonic()))  # the rest of the outage
    private_broker.start()
    back_at = time.monotonic()
    chaos.publish_now(second, seconds=PUBLISH_SECONDS / 2)
    row = chaos.measure("broker restarted mid-stream (and the dispatcher)", since=back_at)
    assert row.clean, row


def test_the_same_upstream_events_published_twice(chaos: ChaosRun) -> None:
    chaos.publish_now()
    chaos.publish_now(seconds=None)  # an upstream retry of everything, as fast as the broker takes it
    row = chaos.measure("every upstream event published twice", since=time.monotonic())
    assert row.clean, row
    assert row.topic_records > row.expected  # the detector saw both copies; the API kept one
    on_topic = {orjson.loads(m.value)["exception_id"] for m in chaos.topic(chaos.settings.exceptions_topic)}
    assert on_topic == chaos.truth.ids
