"""/metrics, /healthz and /readyz on one port, for a service without a web app of its own (the
dispatcher in its own loop, the detector from a thread of its own: `start_in_thread`).

`/healthz` answers 200 while the process runs; `/readyz` answers 200 when `readiness()` returns
None and 503 with its reason otherwise; `/metrics` is prometheus-client's text format.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


@dataclass(frozen=True, slots=True)
class NotReady:
    reason: str  # bounded, as a metric label would be
    detail: str  # one line for the operator: what is wrong and which setting to check


Readiness = Callable[[], NotReady | None]


class StatusServer:
    def __init__(self, port: int, readiness: Readiness, *, host: str = "0.0.0.0") -> None:
        self.port, self.host = port, host
        self._readiness = readiness
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        await self._runner.cleanup()

    def start_in_thread(self, *, timeout: float = 10.0) -> threading.Thread:
        """Serve from a daemon thread with an event loop of its own, for a process whose loop is not
        ours to share or is busy for long stretches (the detector's faust worker). Returns once the
        port listens; raises what binding it raised (a port in use)."""
        bound = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as err:  # handed to the caller below
                failure.append(err)
                bound.set()
                return
            bound.set()
            loop.run_forever()

        thread = threading.Thread(target=serve, name="status-server", daemon=True)
        thread.start()
        if not bound.wait(timeout):
            raise TimeoutError(f"the status server did not listen on port {self.port} within {timeout:.0f} s")
        if failure:
            raise failure[0]
        return thread

    async def _metrics(self, _request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(REGISTRY))
        response.headers["content-type"] = CONTENT_TYPE_LATEST
        return response

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        not_ready = self._readiness()
        if not_ready is None:
            return web.json_response({"status": "ready"})
        body = {"status": "not ready", "reason": not_ready.reason, "detail": not_ready.detail}
        return web.json_response(body, status=503)
