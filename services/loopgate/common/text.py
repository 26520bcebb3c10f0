"""Text from data made safe for one line (a log line, a header, a reason column, a chat message):
control characters, line and paragraph separators and bidirectional overrides become a space, so
data can neither forge a line nor reorder what a reader sees; and bounded."""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, U+2028/U+2029, and the bidirectional embeddings, overrides and isolates
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def one_line(text: str, limit: int = 2000) -> str:
    """`text` on one line, cut to `limit` characters (an ellipsis says it was cut)."""
    flat = _UNSAFE.sub(" ", text)
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)] + "\u2026"
