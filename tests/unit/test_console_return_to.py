"""The console's `next` parameter: only a same-site path under /console is followed after sign-in."""

from __future__ import annotations

import pytest

from loopgate.resolution_api.console.return_to import MAX_NEXT_CHARACTERS, safe_next, sign_in_url


@pytest.mark.parametrize(
    "value",
    [
        "/console/exceptions/exc-1",
        "/console/exceptions/exc%2F1%20x",
        "/console/queue?status=open&severity=high",
        "/console",
        "/console/silences",
    ],
)
def test_a_console_path_is_followed(value: str) -> None:
    assert safe_next(value) == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "https://evil.example/console/queue",
        "//evil.example/console/queue",
        "/console//evil.example",
        "/\\evil.example",
        "/console/\\evil.example",
        "/console/%5cevil.example",
        "/console/exceptions/x%0d%0aSet-Cookie:%20a=b",
        "/console/exceptions/x%0aLocation:%20https://evil",
        "/console/exceptions/x\r\nLocation: https://evil",
        "/console/../v1/exceptions",
        "/console/%2e%2e/v1/tokens",
        "/consolex",
        "/v1/exceptions/exc-1",
        "console/queue",
        "javascript:alert(1)",
        "/console/queue#frag",
        '/console/"><script>',
        "/console/ space",
        "/console/" + "a" * MAX_NEXT_CHARACTERS,
        "/console/%00",
    ],
)
def test_hostile_next_values_are_refused(value: str | None) -> None:
    assert safe_next(value) is None


def test_the_sign_in_url_carries_the_page_encoded() -> None:
    assert sign_in_url("/console/exceptions/exc%2F1", "") == "/console/sign-in?next=%2Fconsole%2Fexceptions%2Fexc%252F1"
    assert sign_in_url("/console/queue", "") == "/console/sign-in"
    assert sign_in_url("/console//evil", "") == "/console/sign-in"
