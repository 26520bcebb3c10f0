"""What the resolution API refuses before touching the database, and how it words 422s."""

from __future__ import annotations

from loopgate.resolution_api.http.errors import describe_validation_errors
from loopgate.resolution_api.schemas import unstorable_text


def test_plain_text_numbers_and_nesting_are_storable() -> None:
    assert unstorable_text({"a": ["b", 1, 2.5, None, {"c": "d"}]}) is None


def test_a_nul_character_is_named_by_its_path() -> None:
    assert unstorable_text({"observed": {"notes": ["ok", "a\x00b"]}}) == (
        "observed.notes.1: NUL characters (\\u0000) are not allowed"
    )


def test_a_nul_character_in_a_key_is_found_too() -> None:
    assert unstorable_text({"observed": {"k\x00": 1}}) == (
        "observed.k\x00 (key): NUL characters (\\u0000) are not allowed"
    )


def test_a_lone_surrogate_is_refused() -> None:
    assert unstorable_text({"summary": "\ud800"}) == "summary: lone surrogate characters are not allowed"


def test_validation_messages_name_each_field() -> None:
    errors = [
        {"loc": ("body", "severity"), "msg": "Input should be 'info'", "type": "enum"},
        {"loc": ("query", "limit"), "msg": "Input should be less than or equal to 200", "type": "le"},
    ]

    assert describe_validation_errors(errors) == (
        "body.severity: Input should be 'info'; query.limit: Input should be less than or equal to 200"
    )


def test_malformed_json_is_described_as_such() -> None:
    errors = [
        {
            "loc": ("body", 3),
            "msg": "JSON decode error",
            "type": "json_invalid",
            "ctx": {"error": "Expecting value"},
        }
    ]

    assert describe_validation_errors(errors) == "body is not valid JSON: Expecting value"


def test_at_most_five_problems_are_spelled_out() -> None:
    errors = [{"loc": ("body", f"f{i}"), "msg": "Field required", "type": "missing"} for i in range(7)]

    assert describe_validation_errors(errors).endswith("body.f4: Field required; and 2 more")


def test_a_lone_surrogate_in_a_key_is_named_with_the_key_escaped_so_the_answer_can_carry_it() -> None:
    problem = unstorable_text({"observed": {"\ud800": "x"}})

    assert problem == "observed.\\ud800 (key): lone surrogate characters are not allowed"
    assert problem is not None and problem.encode("utf-8")  # the 422 can be written
