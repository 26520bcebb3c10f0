"""/healthz (the process answers), /readyz (the database answers), /metrics (Prometheus text)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from loopgate.resolution_api.deps import ServicesDep
from loopgate.resolution_api.domain_errors import Unavailable
from loopgate.resolution_api.errors import responses

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", summary="Readiness: the database answers", responses=responses(503))
async def readyz(services: ServicesDep) -> Health:
    try:
        await services.db.ping()
    except Exception as err:  # any database failure means not ready, never a 500
        log.warning("not ready: %s", err)
        raise Unavailable(f"database unreachable: {type(err).__name__}") from None
    return Health(status="ready")


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics() -> Response:
    # From memory only: the sweeper refreshes the database-backed gauges on each pass.
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
