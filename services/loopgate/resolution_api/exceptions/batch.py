"""Reading a batched create (`POST /v1/exceptions/batch`): `{"records": [record, ...]}`, each
record validated on its own, exactly as the single create validates its body (and checks its
detected_at against the API's clock), so one bad record fails alone and gets the 422 it would get
by itself. Only a body that is not such a list at all (unreadable JSON, no `records` list, more
than `batch_max_records`) fails the whole request."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from loopgate.resolution_api.http.limits import MAX_JSON_DEPTH, too_deep_body, value_depth
from loopgate.resolution_api.schemas import ExceptionCreate


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """A record that is not a valid exception record: its errors, located as the single create's."""

    errors: list[dict[str, Any]]
    body: dict[str, Any] | None = None  # the single create's whole answer, where it is not built from errors


BatchItem = ExceptionCreate | InvalidRecord
# A check of a valid record against what the route knows (the clock, the settings): its 422 error, or None.
RecordCheck = Callable[[ExceptionCreate], dict[str, Any] | None]


def _whole(loc: tuple[str | int, ...], message: str, kind: str) -> RequestValidationError:
    return RequestValidationError([{"loc": loc, "msg": message, "type": kind}])


def _parse(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:  # what orjson refuses and the single create accepts: integers past 64 bits, NaN
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise _whole(("body",), f"body is not valid JSON: {err}", "json_invalid") from None


def read_record(value: Any, check: RecordCheck | None = None) -> BatchItem:
    """One record, validated as the single create validates its body (errors located in `body`),
    then checked by `check` as the single create checks it."""
    if isinstance(value, dict | list) and (depth := value_depth(value)) > MAX_JSON_DEPTH:
        body = too_deep_body(depth)  # what the door answers a single create this deep
        return InvalidRecord(body["detail"], body)
    try:
        record = ExceptionCreate.model_validate(value, from_attributes=True)
    except ValidationError as err:
        return InvalidRecord([{**e, "loc": ["body", *e["loc"]]} for e in err.errors()])
    problem = check(record) if check is not None else None
    return record if problem is None else InvalidRecord([problem])


def read_batch(body: bytes, *, max_records: int, check: RecordCheck | None = None) -> list[BatchItem]:
    """The records of a batch body, each valid or invalid on its own (`check`: as in read_record);
    RequestValidationError (a 422 for the whole request) when the body is not a batch of at most
    `max_records` records."""
    parsed = _parse(body)
    if not isinstance(parsed, dict) or set(parsed) != {"records"} or not isinstance(parsed["records"], list):
        raise _whole(("body",), 'the body must be {"records": [record, ...]}', "batch_shape")
    records: list[Any] = parsed["records"]
    if len(records) > max_records:
        raise _whole(
            ("body", "records"),
            f"{len(records)} records; at most {max_records} in one request (LOOPGATE_BATCH_MAX_RECORDS)",
            "too_many_records",
        )
    return [read_record(value, check) for value in records]
