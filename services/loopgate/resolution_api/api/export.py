"""/v1/export/training-data: decided exceptions as newline-delimited JSON training records,
streamed (export.py pages through them). Thin: parse, check, stream."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from loopgate.resolution_api.api.stats import IDENTIFIER
from loopgate.resolution_api.http.auth import CanRead
from loopgate.resolution_api.http.deps import ServicesDep, reject_unstorable_params
from loopgate.resolution_api.http.errors import responses
from loopgate.resolution_api.outcomes import export
from loopgate.resolution_api.schemas import Rfc3339
from loopgate_schemas.outcomes import Decision

router = APIRouter(prefix="/v1/export", tags=["export"], dependencies=[Depends(reject_unstorable_params)])


async def export_filters(
    services: ServicesDep,
    since: Annotated[
        Rfc3339 | None, Query(description="Resolved at or after this time (RFC 3339, with an offset)")
    ] = None,
    until: Annotated[
        Rfc3339 | None, Query(description="Resolved before this time (RFC 3339, with an offset); default: now")
    ] = None,
    rule_id: Annotated[str | None, Query(max_length=64, pattern=IDENTIFIER)] = None,
    client_id: Annotated[str | None, Query(max_length=255)] = None,
    source: Annotated[str | None, Query(max_length=255, pattern=IDENTIFIER, description="The topic")] = None,
    model: Annotated[str | None, Query(max_length=255, description="The event's data.model")] = None,
    decision: Annotated[list[Decision] | None, Query(description="Repeat to allow several")] = None,
) -> export.ExportFilters:
    """Every export's filters (the training data's and the labelling tools' alike)."""
    return export.ExportFilters(
        since=since,
        until=until or services.clock(),
        rule_id=rule_id,
        client_id=client_id,
        source=source,
        model=model,
        decisions=[d.value for d in decision or ()],
    )


FiltersDep = Annotated[export.ExportFilters, Depends(export_filters)]


@router.get(
    "/training-data",
    summary="Decided exceptions as training data (NDJSON, streamed, oldest resolution first)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {export.MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/TrainingRecord"}}},
            "description": "One TrainingRecord (schemas/jsonschema/training-record.json) per line",
        },
        **responses(400, 401, 403),
    },
)
async def export_training_data(principal: CanRead, services: ServicesDep, filters: FiltersDep) -> StreamingResponse:
    body = export.ndjson(db=services.db, filters=filters, page_rows=services.settings.export_page_rows)
    return StreamingResponse(body, media_type=export.MEDIA_TYPE)
