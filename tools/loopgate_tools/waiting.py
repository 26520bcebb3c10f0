"""Waiting for something to become true, with a deadline: the one polling loop of the tests and tools.

`eventually(check, timeout=..., interval=...)` calls `check` until it passes and returns what it
returned. A check passes when it returns anything but `False` without raising; it has not passed
yet when it returns `False` (a predicate) or raises one of `retrying` (by default `AssertionError`:
an assertion). Any other exception is raised at once. On timeout it raises `NeverHeld`
carrying the last failure's message, so a test says what it last saw, not only that it waited.
`eventually_async` is the same for a check that is a coroutine function (or a plain one) in an
event loop."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


class NeverHeld(AssertionError, TimeoutError):
    """A check did not pass within its timeout; the message is the last failure's. An
    AssertionError for pytest, a TimeoutError for callers that catch one."""


class _NotYet(Exception):
    pass


def _outcome(result: T) -> T:
    if result is False:
        raise _NotYet
    return result


def _cause(error: BaseException) -> BaseException | None:
    return None if isinstance(error, _NotYet) else error


def _message(
    check: Callable[..., Any], error: BaseException | None, timeout: float, what: str | None, tries: int
) -> str:
    subject = what or getattr(check, "__name__", repr(check))
    if error is None or isinstance(error, _NotYet):
        last = "returned False"
    else:
        last = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return f"{subject} did not hold within {timeout} s ({tries} tries); last: {last}"


def eventually(
    check: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str | None = None,
    retrying: tuple[type[BaseException], ...] = (AssertionError,),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`check()` once it passes; `NeverHeld` with the last failure's message after `timeout` s."""
    deadline = clock() + timeout
    tries = 0
    not_yet: tuple[type[BaseException], ...] = (_NotYet, *retrying)
    while True:
        tries += 1
        try:
            return _outcome(check())
        except not_yet as error:
            if clock() >= deadline:
                raise NeverHeld(_message(check, error, timeout, what, tries)) from _cause(error)
        sleep(interval)


@overload
async def eventually_async(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float,  # noqa: ASYNC109 (the same call shape as eventually; it polls, it does not cancel)
    interval: float = ...,
    what: str | None = ...,
    retrying: tuple[type[BaseException], ...] = ...,
    clock: Callable[[], float] = ...,
    sleep: Callable[[float], Awaitable[None]] = ...,
) -> T: ...


@overload
async def eventually_async(
    check: Callable[[], T],
    *,
    timeout: float,  # noqa: ASYNC109 (the same call shape as eventually; it polls, it does not cancel)
    interval: float = ...,
    what: str | None = ...,
    retrying: tuple[type[BaseException], ...] = ...,
    clock: Callable[[], float] = ...,
    sleep: Callable[[float], Awaitable[None]] = ...,
) -> T: ...


async def eventually_async(
    check: Callable[[], Any],
    *,
    timeout: float,  # noqa: ASYNC109 (the same call shape as eventually; it polls, it does not cancel)
    interval: float = 0.05,
    what: str | None = None,
    retrying: tuple[type[BaseException], ...] = (AssertionError,),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Any:
    """As `eventually`, awaiting `check()` when it returns an awaitable and sleeping without
    blocking the event loop."""
    deadline = clock() + timeout
    tries = 0
    not_yet: tuple[type[BaseException], ...] = (_NotYet, *retrying)
    while True:
        tries += 1
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            return _outcome(result)
        except not_yet as error:
            if clock() >= deadline:
                raise NeverHeld(_message(check, error, timeout, what, tries)) from _cause(error)
        await sleep(interval)
