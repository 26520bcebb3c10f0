"""/healthz (the process answers), /readyz (the database answers; what cannot leave is listed),
/metrics (Prometheus text)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from loopgate.resolution_api.domain_errors import Unavailable
from loopgate.resolution_api.http.deps import ServicesDep
from loopgate.resolution_api.http.errors import responses

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(Health):
    # A receiver or the broker failing does not make the API unready (taking it out of service
    # would not bring them back, and what they miss waits in the database), but it is said here.
    degraded: list[str] = Field(
        default_factory=list,
        description="What cannot leave Loopgate now (a failing notification receiver, the outcomes' broker)",
    )


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", summary="Readiness: the database answers", responses=responses(503))
async def readyz(services: ServicesDep) -> Readiness:
    try:
        await services.db.ping()
    except Exception as err:  # any database failure means not ready, never a 500
        log.warning("not ready: %s", err)
        raise Unavailable(f"database unreachable: {type(err).__name__}") from None
    return Readiness(status="ready", degraded=[*services.relay.problems(), *services.notifier.problems()])


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics() -> Response:
    # From memory only: the sweeper refreshes the database-backed gauges on each pass.
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
