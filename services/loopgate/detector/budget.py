"""The record budget: every exception record the detector publishes fits and can be stored.

A record stays under RECORD_BUDGET bytes of JSON (contract: 512 KiB), its text fields within the
lengths the resolution API accepts, and every string in it is storable (PostgreSQL's JSONB takes
no NUL and no lone surrogate). The copied `event` is cut where it must be (long strings first,
then long lists and objects, nesting past MAX_EVENT_DEPTH) and each place cut is listed in the
record's `trimmed` as a JSON path; the full event stays reachable through `event_ref`.

A dead letter must fit the producer's request limit: `fit_dead_letter` cuts its key and value
and says so. Pure functions only: the detector, its tests and the evaluator share them.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

import orjson

from loopgate_schemas.exceptions import clean_text_id

RECORD_BUDGET = 512 * 1024  # contract: a record stays under 512 KiB
EVENT_BUDGET = 448 * 1024  # the event's share; the other fields are bounded by the limits below
MAX_EVENT_DEPTH = 20  # the event sits at depth 1 of the record; the API refuses bodies deeper than 32
MAX_TRIMMED_PATHS = 64
MAX_PATH_KEY = 64  # characters of an object key shown in a trimmed path
MAX_KEY = 256  # characters kept of an object key in the copied event
DETAIL_STRING = 1000  # strings inside observed / threshold / expected
DETAIL_ITEMS = 64
DETAIL_DEPTH = 4
TOO_DEEP = "[nested too deep]"
CUT = "…"
# The record's text fields and the lengths the API accepts (ExceptionRecord's max_length).
FIELD_LIMITS = {"summary": 1000, "subject": 255, "client_id": 255, "event_type": 255, "source": 255}
FINGERPRINT_LIMIT = 512
# Identifiers taken from upstream events: the API refuses control and invisible characters in them.
TEXT_ID_FIELDS = ("subject", "client_id", "fingerprint")
# Producer's request limit (faust and aiokafka: 1048576 bytes) less room for the batch's framing.
DEAD_LETTER_BUDGET = 1_000_000
MIN_INT, MAX_INT = -(2**63), 2**64 - 1  # what orjson can write

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL, and surrogates left unpaired
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# (longest string, most items per list or object, deepest container) tried in turn until it fits
_SHRINK_STEPS: tuple[tuple[int, int | None, int], ...] = (
    (16384, None, MAX_EVENT_DEPTH),
    (4096, None, MAX_EVENT_DEPTH),
    (1024, None, MAX_EVENT_DEPTH),
    (256, None, MAX_EVENT_DEPTH),
    (64, 256, MAX_EVENT_DEPTH),
    (64, 32, 8),
    (64, 8, 1),
)


def clean_text(s: str) -> str:
    """`s` with NUL and lone surrogates replaced by U+FFFD, so any store and encoder takes it."""
    return s if s.isascii() and "\x00" not in s else _UNSTORABLE.sub("\ufffd", s)


def cut_text(s: str, limit: int) -> str:
    """At most `limit` characters, clean; a cut one ends with an ellipsis."""
    s = clean_text(s)
    return s if len(s) <= limit else s[: limit - 1] + CUT


def cut_key(s: str, limit: int) -> str:
    """At most `limit` characters, clean, and still distinct: a cut one ends with a hash of the whole."""
    s = clean_text(s)
    if len(s) <= limit:
        return s
    digest = hashlib.blake2b(s.encode(), digest_size=8).hexdigest()
    return f"{s[: limit - 17]}~{digest}"


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENTIFIER.match(key):
        return f"{path}.{key}"
    return f"{path}[{orjson.dumps(cut_text(key, MAX_PATH_KEY)).decode()}]"


def _sanitize(value: Any, path: str, depth: int, cut: dict[str, None], limits: tuple[int, int | None, int]) -> Any:
    """A copy of `value` that orjson writes and a JSON store keeps, within `limits`; each place
    changed goes into `cut` (an ordered set of paths)."""
    max_string, max_items, max_depth = limits
    if isinstance(value, str):
        cleaned = clean_text(value)
        if len(cleaned) > max_string:
            cleaned = cleaned[: max_string - 1] + CUT
        if cleaned != value:
            cut[path] = None
        return cleaned
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if MIN_INT <= value <= MAX_INT:
            return value
        cut[path] = None  # beyond what a JSON number is read back as; kept as its digits
        return str(value)[:max_string]
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        cut[path] = None
        return None
    if isinstance(value, dict | list):
        if depth >= max_depth:
            cut[path] = None
            return TOO_DEEP
        if max_items is not None and len(value) > max_items:
            cut[path] = None
        if isinstance(value, list):
            return [_sanitize(v, _child(path, i), depth + 1, cut, limits) for i, v in enumerate(value[:max_items])]
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if max_items is not None and i >= max_items:
                break
            key = cut_key(str(k), MAX_KEY)
            if key != k:
                cut[_child(path, str(k))] = None
            out[key] = _sanitize(v, _child(path, key), depth + 1, cut, limits)
        return out
    cut[path] = None  # not a JSON type (it cannot come from a parser): shown as text
    return cut_text(repr(value), max_string)


def _fast_fits(value: dict[str, Any], budget: int) -> bool:
    """Most events: writable as they are, small, shallow and free of NUL (checked without a walk)."""
    try:
        data = orjson.dumps(value)
    except (TypeError, ValueError):
        return False
    if len(data) > budget or b"\\u0000" in data or data.count(b"{") + data.count(b"[") >= MAX_EVENT_DEPTH:
        return False
    # orjson writes a non-finite float (an extra field of 1e999 parses to inf) as null: such an
    # event takes the walk, which makes it null in the copy too and lists the path.
    return b"null" not in data or orjson.loads(data) == value


def fit_event(event: dict[str, Any], budget: int = EVENT_BUDGET) -> tuple[dict[str, Any], list[str]]:
    """The event to copy into a record, within `budget` bytes of JSON, and the paths cut in it."""
    if _fast_fits(event, budget):
        return event, []
    for limits in _SHRINK_STEPS:
        cut: dict[str, None] = {}
        fitted = _sanitize(event, "$", 0, cut, limits)
        if len(orjson.dumps(fitted)) <= budget:
            return fitted, list_paths(cut)
    return {}, ["$"]  # unreachable with the steps above; a record is never dropped for its event


def list_paths(cut: dict[str, None]) -> list[str]:
    """The paths for `trimmed`: at most MAX_TRIMMED_PATHS, then how many more."""
    paths = [cut_text(p, 512) for p in cut]
    if len(paths) <= MAX_TRIMMED_PATHS:
        return paths
    return [*paths[: MAX_TRIMMED_PATHS - 1], f"... and {len(paths) - MAX_TRIMMED_PATHS + 1} more"]


def fit_detail(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """observed / threshold / expected: small by design, bounded all the same (a rule copies claims)."""
    if value is None:
        return None
    fitted: dict[str, Any] = _sanitize(value, "$", 0, {}, (DETAIL_STRING, DETAIL_ITEMS, DETAIL_DEPTH))
    return fitted


def fit_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A record's fields (as ExceptionRecord takes them) with text cut to the API's lengths and the
    detail dicts bounded; the event is fitted once per message by `fit_event`."""
    out = dict(fields)
    for name, limit in FIELD_LIMITS.items():
        if isinstance(out.get(name), str):
            out[name] = cut_text(out[name], limit) or "?"
    if isinstance(out.get("fingerprint"), str):
        out["fingerprint"] = cut_key(out["fingerprint"], FINGERPRINT_LIMIT)  # still one group per subject
    for name in TEXT_ID_FIELDS:
        if isinstance(out.get(name), str):
            out[name] = clean_text_id(out[name])
    for name in ("observed", "threshold", "expected"):
        if name in out:
            out[name] = fit_detail(out[name])
    if out.get("observed") is None and "observed" in out:
        out["observed"] = {}
    score = out.get("score")
    if isinstance(score, float) and not math.isfinite(score):
        out["score"] = math.copysign(1e300, score) if not math.isnan(score) else None  # JSON has no infinity
    return out


def fit_dead_letter(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]], budget: int = DEAD_LETTER_BUDGET
) -> tuple[bytes | None, bytes | None, bool]:
    """Key and value of a dead letter cut so that key, value and headers fit `budget` bytes;
    whether anything was cut (the value first: it is what is usually large)."""
    room = max(0, budget - sum(len(k) + len(v) + 16 for k, v in headers) - 64)  # 0: the headers alone
    key_len, value_len = len(key or b""), len(value or b"")
    if key_len + value_len <= room:
        return key, value, False
    if key_len <= room // 2:
        return key, (value or b"")[: room - key_len], True
    half = room // 2
    return (key or b"")[:half], (value or b"")[: room - min(key_len, half)], True
