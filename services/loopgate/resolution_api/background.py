"""The API's background loops (the intake's writer, the outbox relay, the sweeper): each one
task, started in the app's lifespan and stopped when the app stops, within a bounded time.

Why stopping needs more than one `cancel()`: on Python 3.11, `asyncio.wait_for` returns the
inner result instead of raising when the cancellation arrives just as the inner awaitable
finishes (fixed in 3.12), and libraries we await use it. A loop whose cancellation was lost that
way ran on forever and `await task` never returned: the API hung on shutdown while the outbox
relay kept retrying an unreachable broker. So `stop()` also sets `stopping` (every loop checks it
between passes), cancels again while the task still runs, and gives up after `within` seconds,
logging the task it leaves behind rather than hanging.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)
DEFAULT_STOP_SECONDS = 10.0
_GRACE_SECONDS = 1.0  # a first cancellation gets this long to unwind (e.g. roll back) in peace
_RECANCEL_SECONDS = 0.25  # then a task that swallowed it is cancelled again this often


class BackgroundLoop:
    name = "background"
    _task: asyncio.Task[None] | None = None
    _stopping: bool = False

    @property
    def running(self) -> bool:
        return self._task is not None

    @property
    def stopping(self) -> bool:
        """True once stop() was called: a loop ends its pass and returns."""
        return self._stopping

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, within: float = DEFAULT_STOP_SECONDS) -> bool:
        """Cancel the loop and wait for it, at most `within` seconds; True if it ended."""
        task, self._task = self._task, None
        self._stopping = True
        if task is None:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        pause = _GRACE_SECONDS
        while not task.done():
            task.cancel()
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.error("%s did not stop within %.1f s; leaving it behind", self.name, within)
                return False
            await asyncio.wait({task}, timeout=min(pause, remaining))
            pause = _RECANCEL_SECONDS
        if not task.cancelled() and task.exception() is not None:
            log.error("%s ended with an error", self.name, exc_info=task.exception())
        return True

    async def _run(self) -> None:
        raise NotImplementedError
