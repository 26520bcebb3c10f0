"""The tests' one HTTP receiver (tests/fixtures/receivers.py) in both of its modes: in the test's
event loop and in a thread of its own, down and back on the same port."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.receivers import Receivers


async def test_in_the_event_loop_it_records_each_post_and_fails_a_paths_first_requests(receivers: Receivers) -> None:
    receivers.fail_first["/flaky"] = 2
    async with httpx.AsyncClient() as client:
        statuses = [(await client.post(receivers.url("/flaky"), json={"n": n})).status_code for n in range(3)]
        assert (await client.post(receivers.url("/hook"), json={"a": 1}, headers={"X-Id": "7"})).status_code == 200
    assert statuses == [503, 503, 200]
    assert [r.body for r in receivers.attempts("/flaky")] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [r.body for r in receivers.accepted("/flaky")] == [{"n": 2}]
    [hook] = await receivers.wait_for("/hook", 1)
    assert hook.headers["x-id"] == hook.headers["X-Id"] == "7"  # case-insensitive, as HTTP's
    assert hook.raw == b'{"a":1}'
    assert [r.path for r in receivers.snapshot()] == ["/flaky", "/hook"]


def test_in_its_own_thread_it_goes_down_and_comes_back_on_the_same_port() -> None:
    receiver = Receivers(fail_first={"/api/v2/alerts": 1}).start()
    try:
        port = receiver.port
        assert httpx.post(receiver.url("/api/v2/alerts"), json=[]).status_code == 503
        assert httpx.post(receiver.url("/api/v2/alerts"), json=[{"x": 1}]).status_code == 200
        receiver.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.post(receiver.url("/oncall"), json={})
        receiver.start()
        assert receiver.port == port
        assert httpx.post(receiver.url("/oncall"), json={"b": 2}).status_code == 200
        assert [(r.path, r.body) for r in receiver.snapshot()] == [
            ("/api/v2/alerts", [{"x": 1}]),
            ("/oncall", {"b": 2}),
        ]
    finally:
        receiver.stop()
