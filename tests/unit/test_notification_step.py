"""A stop that arrives while a notification is being sent waits for it to be recorded: otherwise
the API, restarted, would send it again (a resolved alert told twice)."""

from __future__ import annotations

import asyncio

import pytest

from loopgate.resolution_api.notifications.relay import _finished_even_if_stopped


async def test_a_cancelled_send_is_still_recorded_and_the_cancellation_raised_after() -> None:
    recorded: list[str] = []
    answered = asyncio.Event()

    async def send_and_settle() -> bool:
        answered.set()
        await asyncio.sleep(0.05)  # the receiver answers; then the commit
        recorded.append("sent")
        return True

    task = asyncio.create_task(_finished_even_if_stopped(send_and_settle()))
    await answered.wait()
    task.cancel()
    await asyncio.sleep(0.01)
    task.cancel()  # the relay's stop cancels again while the task still runs
    with pytest.raises(asyncio.CancelledError):
        await task
    assert recorded == ["sent"]


async def test_without_a_stop_the_step_answers_as_it_is() -> None:
    async def failed() -> bool:
        return False

    assert await _finished_even_if_stopped(failed()) is False
