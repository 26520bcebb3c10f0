"""/metrics, /healthz and /readyz on one port, for a service without a web app of its own.

`/healthz` answers 200 while the process runs; `/readyz` answers 200 when `readiness()` returns
None and 503 with its reason otherwise; `/metrics` is prometheus-client's text format.
"""

from __future__ import annotations

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
