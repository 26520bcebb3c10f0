"""/v1/export/label-studio and /v1/export/huggingface: decided exceptions in the formats labelling
tools read (outcomes/labelling.py), streamed with the training export's filters and scope. Thin."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response, StreamingResponse

from loopgate.resolution_api.api.export import FiltersDep
from loopgate.resolution_api.http.auth import CanRead
from loopgate.resolution_api.http.deps import ServicesDep, reject_unstorable_params
from loopgate.resolution_api.http.errors import responses
from loopgate.resolution_api.outcomes import labelling, labelling_export

router = APIRouter(prefix="/v1/export", tags=["export"], dependencies=[Depends(reject_unstorable_params)])


@router.get(
    "/label-studio",
    summary="Decided exceptions as Label Studio tasks (one JSON array, streamed, oldest resolution first)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {labelling_export.LABEL_STUDIO_MEDIA_TYPE: {}},
            "description": "Label Studio tasks: the event as data, the detector's flag as a prediction, the "
            "person's decision, reason and correction as an annotation (for /v1/export/label-studio/config)",
        },
        **responses(400, 401, 403),
    },
)
async def export_label_studio(principal: CanRead, services: ServicesDep, filters: FiltersDep) -> StreamingResponse:
    body = labelling_export.label_studio_tasks(
        db=services.db, filters=filters, page_rows=services.settings.export_page_rows
    )
    return StreamingResponse(body, media_type=labelling_export.LABEL_STUDIO_MEDIA_TYPE)


@router.get(
    "/label-studio/config",
    summary="The Label Studio labeling configuration the exported tasks are made for",
    response_class=Response,
    responses={200: {"content": {labelling_export.LABEL_STUDIO_CONFIG_MEDIA_TYPE: {}}}, **responses(401, 403)},
)
async def label_studio_config(principal: CanRead) -> Response:
    return Response(labelling.LABEL_STUDIO_CONFIG, media_type=labelling_export.LABEL_STUDIO_CONFIG_MEDIA_TYPE)


@router.get(
    "/huggingface",
    summary="Decided exceptions as a Hugging Face dataset's rows (JSON lines, streamed, oldest resolution first)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {labelling_export.DATASET_MEDIA_TYPE: {}},
            "description": "One flat row per line, the columns of the dataset card (`loopgate export --format "
            "huggingface` writes the card beside them)",
        },
        **responses(400, 401, 403),
    },
)
async def export_huggingface(principal: CanRead, services: ServicesDep, filters: FiltersDep) -> StreamingResponse:
    body = labelling_export.dataset_lines(db=services.db, filters=filters, page_rows=services.settings.export_page_rows)
    return StreamingResponse(body, media_type=labelling_export.DATASET_MEDIA_TYPE)
