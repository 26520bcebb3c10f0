"""HTTP conditional requests: an exception's version is its ETag; If-Match guards writes."""

from __future__ import annotations

from loopgate.resolution_api.errors import PreconditionFailed


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(header: str | None) -> frozenset[int] | None:
    """The versions an If-Match header accepts; None when any version will do (absent or `*`).
    A tag that is not one of ours can never match: 412."""
    if header is None or header.strip() == "*":
        return None
    versions = set()
    for tag in header.split(","):
        text = tag.strip()
        if text.startswith("W/"):
            raise PreconditionFailed(f"If-Match {header!r}: weak tags never match; send the ETag as given")
        text = text.strip('"')
        if not text.isdigit():
            raise PreconditionFailed(
                f'If-Match {header!r} is not an ETag of this API (a quoted version: "3")'
            )
        versions.add(int(text))
    return frozenset(versions)
