"""HTTP conditional requests: an exception's version is its ETag; If-Match guards writes."""

from __future__ import annotations

import re

from loopgate.resolution_api.domain_errors import PreconditionFailed


def etag(version: int) -> str:
    return f'"{version}"'


_VERSION = re.compile(r"[0-9]{1,18}")  # ASCII digits only, and few enough to be an integer column
MAX_TAGS = 50


def parse_if_match(header: str | None) -> frozenset[int] | None:
    """The versions an If-Match header accepts; None when any version will do (absent or `*`).
    A tag that is not one of ours can never match: 412."""
    if header is None or header.strip() == "*":
        return None
    shown = header[:80]
    tags = header.split(",", MAX_TAGS)
    if len(tags) > MAX_TAGS:
        raise PreconditionFailed(f"If-Match {shown!r}...: at most {MAX_TAGS} ETags")
    versions = set()
    for tag in tags:
        text = tag.strip()
        if text.startswith("W/"):
            raise PreconditionFailed(f"If-Match {shown!r}: weak tags never match; send the ETag as given")
        text = text.strip('"')
        if not _VERSION.fullmatch(text):
            raise PreconditionFailed(f'If-Match {shown!r} is not an ETag of this API (a quoted version: "3")')
        versions.add(int(text))
    return frozenset(versions)
