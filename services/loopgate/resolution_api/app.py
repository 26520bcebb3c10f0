"""The FastAPI app: `create_app()` wires routes, error handlers and the lifespan, which migrates
the database and runs the intake (creates, batched), the outbox relay, the notification relay and
the sweeper. Settings are read when the app starts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.metrics import Info
from sqlalchemy.exc import OperationalError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from loopgate.common import metrics
from loopgate.common.settings import Settings, get_settings
from loopgate.resolution_api import handlers
from loopgate.resolution_api.access.scoping import ScopeMiddleware
from loopgate.resolution_api.access.tokens import TokenCache, Tokens
from loopgate.resolution_api.api import (
    approvals,
    exceptions,
    export,
    health,
    labelling_export,
    oncall,
    reviews,
    silences,
    stats,
    tokens,
    undelivered,
)
from loopgate.resolution_api.background import BackgroundLoop
from loopgate.resolution_api.clock import Clock, Monotonic, utcnow
from loopgate.resolution_api.console.routes import install as install_console
from loopgate.resolution_api.console.sso import SingleSignOn, load_sso_config
from loopgate.resolution_api.console.sso_routes import install as install_sso
from loopgate.resolution_api.db.engine import Database, SchemaNotAtHead, SecondWriter
from loopgate.resolution_api.exceptions.intake import Intake
from loopgate.resolution_api.http.deps import Services
from loopgate.resolution_api.http.errors import install_error_handlers
from loopgate.resolution_api.http.limits import RequestLimits
from loopgate.resolution_api.notifications.config import load_notifications
from loopgate.resolution_api.notifications.relay import NotificationRelay
from loopgate.resolution_api.outcomes.outbox import OutboxRelay
from loopgate.resolution_api.queues.routing import load_routes
from loopgate.resolution_api.review import agreement as review_agreement
from loopgate.resolution_api.review import flow as second_review
from loopgate.resolution_api.review.config import load_review_policy
from loopgate.resolution_api.schedules.config import load_schedules
from loopgate.resolution_api.schedules.targets import check_escalation_targets
from loopgate.resolution_api.schemas import ExceptionBatch
from loopgate.resolution_api.sweeps.retention import Retention
from loopgate.resolution_api.sweeps.sweeper import Sweeper

log = logging.getLogger(__name__)
DATABASE_WAIT_SECONDS = 30.0
DISPOSE_SECONDS = 5.0  # closing the database's connections, after the loops have stopped


async def prepare_when_reachable(db: Database, *, migrate: bool, wait_seconds: float = DATABASE_WAIT_SECONDS) -> None:
    """Apply migrations (or check they are applied), waiting up to `wait_seconds` for a database that
    is still starting."""
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(wait_seconds),
        wait=wait_fixed(1.0),
        retry=retry_if_exception_type((OSError, OperationalError, SchemaNotAtHead)),  # the migrate job may be running
        reraise=True,
    ):
        with attempt:
            await db.prepare(migrate=migrate)


async def stop_within(seconds: float, *loops: BackgroundLoop) -> None:
    """Stop the background loops in order, all of them within `seconds` (Kafka or the database
    not answering must not keep the API from stopping)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    for background in loops:
        await background.stop(max(0.1, deadline - loop.time()))


def _document_batch_body(app: FastAPI) -> None:
    """The batched create reads its body itself (each record on its own), so FastAPI does not know
    its schema: add it to the OpenAPI components the route's requestBody refers to."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = generate()
        batch = ExceptionBatch.model_json_schema(ref_template="#/components/schemas/{model}")
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in batch.pop("$defs", {}).items():
            components.setdefault(name, schema)
        components["ExceptionBatch"] = batch
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _count_request(info: Info) -> None:
    """Request rate, errors and latency, labelled by route template, method and status class."""
    metrics.API_REQUESTS.labels(info.modified_handler, info.method, info.modified_status).inc()
    metrics.API_REQUEST_SECONDS.labels(info.modified_handler, info.method).observe(info.modified_duration)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = utcnow,
    monotonic: Monotonic = time.monotonic,
    sso_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The app: the composition root. `clock` is the time every operation, the intake and the
    sweeper read; `monotonic` times the token cache (tests pass fakes to move time on);
    `sso_transport` carries the single sign-on's calls to the identity provider (default: the network)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        active = settings or get_settings()
        db = Database(active.database_url)
        try:
            writer = db.single_writer()
            writer.__enter__()
        except SecondWriter as err:
            log.error("refusing to start: %s", err)
            raise
        try:
            async with _serving(app, db, active):
                yield
        finally:
            writer.__exit__(None, None, None)

    @asynccontextmanager
    async def _serving(app: FastAPI, db: Database, active: Settings) -> AsyncIterator[None]:
        try:
            routing = load_routes(active.routes_file)  # a bad routes file refuses to start, naming the key
            second_review.use_policy(load_review_policy(active.review_file))  # so does a bad review file
            receivers, endpoints = load_notifications(active.notifications_file)  # so does a bad notifications file
            sso_config = load_sso_config(active)  # and bad single sign-on settings or mapping file
            schedules = load_schedules(active.schedules_file)  # and a bad schedules file
            check_escalation_targets(receivers, schedules, active.notifications_file)  # levels name real people
            try:
                await prepare_when_reachable(db, migrate=active.database_migrate_on_start)
            except SchemaNotAtHead as err:
                log.error("refusing to start: %s", err)
                raise
            await review_agreement.refresh_gauges(db=db, now=clock())  # the dashboard's agreement (review/)
            sso = None
            if sso_config is not None:
                sso = SingleSignOn(sso_config, db=db, clock=clock, transport=sso_transport, monotonic=monotonic)
            relay = OutboxRelay(db=db, settings=active)
            bus = handlers.bootstrap(outbox=relay)  # what follows each change (handlers.py)
            notifier = NotificationRelay(db=db, settings=active, config=receivers, endpoints=endpoints, clock=clock)
            sweeper = Sweeper(
                db=db, settings=active, clock=clock, notifications=receivers, schedules=schedules, bus=bus
            )
            intake = Intake(db=db, clock=clock, routing=routing, bus=bus)
            retention = Retention(db=db, settings=active, clock=clock)
            app.state.services = Services(
                settings=active,
                db=db,
                intake=intake,
                relay=relay,
                sweeper=sweeper,
                notifier=notifier,
                tokens=Tokens(db=db, cache=TokenCache(active.token_cache_seconds, monotonic=monotonic), clock=clock),
                clock=clock,
                bus=bus,
                sso=sso,
                schedules=schedules,
            )
            if sso is not None:
                await sso.start()
            await intake.start()
            await relay.start()
            await notifier.start()
            await sweeper.start()
            await retention.start()
            log.info("resolution API ready (database %s)", db.backend)
            try:
                yield
            finally:
                await stop_within(active.api_shutdown_seconds, retention, sweeper, notifier, relay, intake)
                if sso is not None:
                    await sso.stop()
        finally:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DISPOSE_SECONDS):
                    await db.dispose()

    app = FastAPI(
        title="Loopgate resolution API",
        version="1",
        summary="Work the exceptions Loopgate detects; every final resolution is published as an outcome.",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry server span per request (a child of a valid `traceparent`; a
        # malformed one is ignored), recording only while tracing is on (trace_spans.py); metrics
        # are Prometheus's, and the span of the request is the one a created exception keeps.
        telemetry={"tracing": True, "metrics": False, "logs": False, "operation_spans": False},
    )
    _document_batch_body(app)
    install_error_handlers(app)
    app.add_middleware(RequestLimits, max_body_bytes=lambda: (settings or get_settings()).api_max_body_bytes)
    app.add_middleware(ScopeMiddleware)  # each request sees nothing until it is authenticated (scoping.py)
    # Outermost, so requests refused at the door are counted too; /metrics itself is not.
    Instrumentator(excluded_handlers=["^/metrics$"]).add(_count_request).instrument(app)
    app.include_router(health.router)
    app.include_router(exceptions.router)
    app.include_router(tokens.router)
    app.include_router(stats.router)
    app.include_router(reviews.router)  # the blind second review (review/)
    app.include_router(reviews.stats_router)  # and its agreement statistics
    app.include_router(export.router)
    app.include_router(labelling_export.router)
    app.include_router(silences.router)
    app.include_router(undelivered.router)
    app.include_router(approvals.router)
    app.include_router(oncall.router)
    install_console(app)  # the operators' web console under /console
    install_sso(app)  # and its single sign-on under /console/sso
    return app
