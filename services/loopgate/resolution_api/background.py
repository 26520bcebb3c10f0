"""The API's background loops (the intake's writer, the outbox relay, the sweeper): each one
task, started in the app's lifespan and cancelled when the app stops."""

from __future__ import annotations

import asyncio
import contextlib


class BackgroundLoop:
    name = "background"
    _task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        raise NotImplementedError
