"""eventually() / eventually_async(): the one polling loop the tests and tools use. Time is a fake
clock the sleeps advance, so these tests never wait on the wall clock."""

from __future__ import annotations

import pytest

from loopgate_tools.processes import wait_until
from loopgate_tools.waiting import NeverHeld, eventually, eventually_async


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def failing_until(passes_on: int, value: object = "done") -> tuple[list[int], object]:
    calls: list[int] = []

    def check() -> object:
        calls.append(len(calls) + 1)
        assert len(calls) >= passes_on, f"call {len(calls)} of {passes_on}"
        return value

    return calls, check


def test_an_assertion_that_passes_late_returns_what_the_check_returned() -> None:
    clock = Clock()
    calls, check = failing_until(4, value=[1, 2])
    assert eventually(check, timeout=10, interval=0.5, clock=clock, sleep=clock.sleep) == [1, 2]  # type: ignore[arg-type]
    assert calls == [1, 2, 3, 4]
    assert clock.sleeps == [0.5, 0.5, 0.5]


def test_a_predicate_that_returns_false_is_retried_until_true() -> None:
    clock = Clock()
    answers = iter([False, False, True])
    assert eventually(lambda: next(answers), timeout=10, clock=clock, sleep=clock.sleep) is True
    assert len(clock.sleeps) == 2


def test_a_falsy_value_that_is_not_false_passes() -> None:
    clock = Clock()
    assert eventually(lambda: [], timeout=10, clock=clock, sleep=clock.sleep) == []
    assert eventually(lambda: None, timeout=10, clock=clock, sleep=clock.sleep) is None
    assert clock.sleeps == []


def test_a_timeout_raises_the_last_failures_message() -> None:
    clock = Clock()
    calls, check = failing_until(1000)
    with pytest.raises(NeverHeld) as raised:
        eventually(check, timeout=2, interval=0.5, what="the receiver", clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert len(calls) == 5  # at 0, 0.5, 1, 1.5 and 2 s
    # pytest's assertion rewriting adds its explanation after the check's own message
    assert str(raised.value).startswith(
        "the receiver did not hold within 2 s (5 tries); last: AssertionError: call 5 of 1000"
    )
    assert isinstance(raised.value.__cause__, AssertionError)
    assert isinstance(raised.value, AssertionError) and isinstance(raised.value, TimeoutError)


def test_a_predicate_that_never_holds_says_it_returned_false_and_names_itself() -> None:
    clock = Clock()

    def broker_is_up() -> bool:
        return False

    with pytest.raises(NeverHeld, match=r"^broker_is_up did not hold within 1 s \(3 tries\); last: returned False$"):
        eventually(broker_is_up, timeout=1, interval=0.5, clock=clock, sleep=clock.sleep)


def test_an_exception_that_is_not_retried_is_raised_at_once() -> None:
    clock = Clock()

    def check() -> bool:
        raise KeyError("gone")

    with pytest.raises(KeyError, match="gone"):
        eventually(check, timeout=10, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_retrying_names_the_exceptions_that_mean_not_yet() -> None:
    clock = Clock()
    errors = iter([ConnectionError("refused"), ConnectionError("refused")])

    def check() -> str:
        error = next(errors, None)
        if error is not None:
            raise error
        return "up"

    assert eventually(check, timeout=10, retrying=(ConnectionError,), clock=clock, sleep=clock.sleep) == "up"
    with pytest.raises(NeverHeld, match=r"last: ConnectionError: refused$"):
        eventually(
            lambda: (_ for _ in ()).throw(ConnectionError("refused")),
            timeout=1,
            retrying=(ConnectionError,),
            clock=clock,
            sleep=clock.sleep,
        )


async def test_the_async_variant_awaits_a_coroutine_check_and_sleeps_without_blocking() -> None:
    clock = Clock()
    seen: list[int] = []

    async def arrived() -> list[int]:
        seen.append(1)
        assert len(seen) == 3, f"{len(seen)} of 3"
        return seen

    assert await eventually_async(arrived, timeout=10, interval=0.2, clock=clock, sleep=clock.asleep) == [1, 1, 1]
    assert clock.sleeps == [0.2, 0.2]


async def test_the_async_variant_takes_a_plain_check_and_times_out_with_its_message() -> None:
    clock = Clock()
    with pytest.raises(NeverHeld, match=r"^rows did not hold within 1 s \(2 tries\); last: AssertionError: 0 rows"):
        await eventually_async(
            lambda: _assert_rows(0), timeout=1, interval=1, what="rows", clock=clock, sleep=clock.asleep
        )


def _assert_rows(n: int) -> None:
    assert n > 0, f"{n} rows"


def test_wait_until_still_fails_at_once_on_an_assertion_and_treats_a_falsy_result_as_not_yet() -> None:
    def died() -> bool:
        raise AssertionError("the detector exited")

    with pytest.raises(AssertionError, match=r"^the detector exited$"):
        wait_until(died, timeout=60, what="the detector")
    answers = iter([0, [], 1])
    wait_until(lambda: next(answers), timeout=5, what="a count", interval=0.01)  # type: ignore[arg-type,return-value]
    with pytest.raises(TimeoutError, match=r"^the broker did not hold within 0\.05 s"):
        wait_until(lambda: False, timeout=0.05, what="the broker", interval=0.01)
