"""Where the console returns after signing in: the `next` parameter, accepted only as a same-site
relative path under /console (a notification's link, /console/exceptions/<id>, opens the sign-in
page, which brings the operator back there).

Refused, so the default page is used instead: anything with a scheme or host (`https://evil`,
`//evil`, `/\\evil`), a backslash or control character, raw or percent-encoded (`%0d%0a`,
`%5c`), a `..` segment (raw or encoded), and anything longer than MAX_NEXT_CHARACTERS.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit

DEFAULT_PAGE = "/console/queue"
MAX_NEXT_CHARACTERS = 2000
# RFC 3986 path and query characters only: no space, quote, backslash, `<`, `>` or fragment.
_ALLOWED = re.compile(r"^/console(?:/[A-Za-z0-9\-._~%!$&'()*+,;=:@/]*)?(?:\?[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*)?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


def safe_next(value: str | None) -> str | None:
    """`value` if it is a same-site path under /console that is safe to redirect to, else None."""
    if not value or len(value) > MAX_NEXT_CHARACTERS or not _ALLOWED.match(value):
        return None
    decoded = unquote(value)
    if _CONTROL.search(decoded) or "//" in value or decoded.startswith("//"):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    if any(segment in {".", ".."} for segment in unquote(parts.path).split("/")):
        return None
    return value


def sign_in_url(path: str, query: str) -> str:
    """The sign-in page that returns to `path?query` (a GET page), or plainly the sign-in page."""
    target = f"{path}?{query}" if query else path
    if target == DEFAULT_PAGE or safe_next(target) is None:
        return "/console/sign-in"
    return f"/console/sign-in?next={quote(target, safe='')}"
