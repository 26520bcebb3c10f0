"""The pure pieces behind the API's self-defence: the depth count the door makes without parsing,
and background loops that stop within their bound even when a cancellation is swallowed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from loopgate.resolution_api.background import BackgroundLoop
from loopgate.resolution_api.http.limits import json_depth, value_depth

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=40,
)


def _true_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_true_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_true_depth(v) for v in value), default=0)
    return 0


@given(_json)
def test_the_door_counts_the_depth_of_any_json_exactly(value: Any) -> None:
    assert json_depth(orjson.dumps(value)) == _true_depth(value)
    assert json_depth(json.dumps(value).encode()) == _true_depth(value)  # escaped, spaced
    assert value_depth(value) == _true_depth(value)  # the parsed value's depth, counted the same way


def test_a_parsed_value_ten_thousand_levels_deep_is_counted_without_recursion() -> None:
    value: Any = 1
    for _ in range(10_000):
        value = [value]
    assert value_depth(value) == 10_000
    assert value_depth({}) == 1 and value_depth([]) == 1 and value_depth("x") == 0


def test_brackets_in_strings_and_escaped_quotes_do_not_count() -> None:
    assert json_depth(b'{"a": "[[[{{{\\"]]]"}') == 1
    assert json_depth(b'"' + b"[" * 1000 + b'"') == 0


def test_a_body_that_is_only_opening_brackets_is_as_deep_as_they_are_many() -> None:
    assert json_depth(b"[" * 100_000) == 100_000


class _Stubborn(BackgroundLoop):
    """A loop that swallows every cancellation (as a lost asyncio.wait_for race can)."""

    name = "stubborn"
    released = False  # lets the test end the task it made

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if self.released:
                    raise


class _SwallowsOnce(BackgroundLoop):
    name = "swallows-once"

    async def _run(self) -> None:
        swallowed = False
        while not self.stopping:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed = True


async def test_a_loop_that_swallows_its_cancellation_once_is_cancelled_again_and_stops() -> None:
    loop = _SwallowsOnce()
    await loop.start()
    await asyncio.sleep(0)

    assert await asyncio.wait_for(loop.stop(5.0), timeout=30) is True
    assert not loop.running


async def test_a_loop_that_never_ends_is_left_behind_after_its_bound_instead_of_hanging_the_stop() -> None:
    loop = _Stubborn()
    await loop.start()
    await asyncio.sleep(0)
    task = loop._task
    assert task is not None

    stop = asyncio.create_task(loop.stop(0.5))
    done, _ = await asyncio.wait({stop}, timeout=10)

    assert done and stop.result() is False
    assert not task.done()  # left behind, as the API would leave it, and logged
    loop.released = True
    task.cancel()
