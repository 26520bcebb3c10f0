"""docs/contract.md says what the code does: every topic it names is a channel of docs/asyncapi.yaml
and a topic of the settings, every field it names is in the models and the JSON Schemas (and every
field of those is named), every rule and severity is the packaged configuration's, every endpoint is
served, and every example reads as the page says (valid ones as their type, invalid ones rejected
with the kind and reason it states)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from loopgate.common.settings import Settings
from loopgate.detector.config import load_detection_config
from loopgate.resolution_api.app import create_app
from loopgate_schemas.events import EVENT_MODELS, EventRejected, parse_event
from loopgate_schemas.examples import CONTRACT_EXAMPLES
from loopgate_schemas.exceptions import ExceptionRecord
from loopgate_schemas.notifications import Notification, NotificationData
from loopgate_schemas.outcomes import Outcome, OutcomeData

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "contract.md"
SCHEMAS = ROOT / "schemas" / "jsonschema"
Row = dict[str, str]
SOURCE_DIRS = ("docs", "schemas", "services", "tools", "tests", "deploy", "scripts")
TEXT = {".py", ".md", ".yaml", ".yml", ".toml", ".json", ".txt", ".sh", ".mjs"}


def section(heading: str) -> str:
    """The text under a `##`/`###` heading, up to the next heading of its level or above."""
    lines = DOC.read_text().splitlines()
    (start,) = [i for i, line in enumerate(lines) if line.lstrip("#").strip() == heading and line.startswith("#")]
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(rf"#{{1,{level}}} ", lines[i])),
        len(lines),
    )
    return "\n".join(lines[start + 1 : end])


def tables(text: str) -> list[list[Row]]:
    """Every markdown table in `text`, as rows keyed by the header's cells."""
    found: list[list[Row]] = []
    block: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in block]
            header, body = cells[0], cells[2:]
            found.append([dict(zip(header, row, strict=True)) for row in body])
            block = []
    return found


def table(heading: str, first_column: str) -> list[Row]:
    (found,) = [t for t in tables(section(heading)) if t and first_column in t[0]]
    return found


def names(cell: str) -> list[str]:
    """The `code` spans of a cell."""
    return re.findall(r"`([^`]+)`", cell)


def name(cell: str) -> str:
    (only,) = names(cell)
    return only


def fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def schema(file: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / file).read_text())
    return loaded


# --- topics ----------------------------------------------------------------------------------


def test_every_topic_is_a_channel_of_the_asyncapi_document_and_a_topic_of_the_settings() -> None:
    documented = [name(row["topic"]) for row in table("Topics", "topic")]
    channels = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())["channels"].values()
    assert len(documented) == len(set(documented))
    assert set(documented) == set(Settings(topic_prefix="").topic_partitions())
    assert set(documented) == {channel["address"] for channel in channels}


# --- upstream events -------------------------------------------------------------------------


EVENTS = table("Upstream events: CloudEvents 1.0, JSON structured mode", "type")


def test_every_event_type_is_documented_once() -> None:
    assert sorted(name(row["type"]) for row in EVENTS) == sorted(EVENT_MODELS)


@pytest.mark.parametrize("row", EVENTS, ids=lambda row: row["type"])
def test_an_event_types_data_fields_are_the_models_and_the_json_schemas(row: Row) -> None:
    event_type = name(row["type"])
    documented = names(row["`data`"])
    data_model = EVENT_MODELS[event_type].model_fields["data"].annotation
    assert isinstance(data_model, type) and issubclass(data_model, BaseModel)
    generated = schema(f"event.{event_type}.json")["$defs"][data_model.__name__]
    assert len(documented) == len(set(documented))
    assert set(documented) == fields(data_model) == set(generated["properties"]) == set(generated["required"])


@pytest.mark.parametrize("row", EVENTS, ids=lambda row: row["type"])
def test_an_event_type_is_read_on_the_topic_the_page_gives_it(row: Row) -> None:
    examples = [r for r in table("Examples", "file") if names(r["read as"]) == names(row["type"])]
    assert examples, row["type"]
    for example in examples:
        assert name(example["topic"]) == name(row["topic"])


# --- examples --------------------------------------------------------------------------------


EXAMPLES = table("Examples", "file")


def test_every_example_file_is_documented_once() -> None:
    documented = [name(row["file"]) for row in EXAMPLES]
    assert sorted(documented) == sorted(p.name for p in CONTRACT_EXAMPLES.iterdir())


@pytest.mark.parametrize("row", EXAMPLES, ids=lambda row: row["file"])
def test_every_example_reads_as_the_page_says(row: Row) -> None:
    value = (CONTRACT_EXAMPLES / name(row["file"])).read_bytes()
    topic = name(row["topic"])
    if row["read as"].startswith("rejected"):
        with pytest.raises(EventRejected) as caught:
            parse_event(topic, value)
        assert caught.value.kind == name(row["read as"])
        assert caught.value.reason.startswith(name(row["reason"]))
    else:
        assert parse_event(topic, value).type == name(row["read as"])
        assert row["reason"] == ""


# --- rules -----------------------------------------------------------------------------------


def test_every_rule_and_its_severity_are_the_packaged_configurations() -> None:
    rules = table("What counts as an exception (the defaults; every number is configuration)", "rule")
    documented = {name(row["`rule_id`"]): row["severity"].split(",")[0] for row in rules}
    assert documented == {rule: str(severity) for rule, severity in load_detection_config().severity.items()}


# --- records, outcomes, notifications --------------------------------------------------------


def documented_fields(heading: str, first_column: str) -> dict[str, str]:
    """field -> its version cell ('' where the table has none)."""
    return {name(row[first_column]): row.get("version", "") for row in table(heading, first_column)}


def test_every_exception_record_field_is_in_the_model_and_the_json_schema_and_back() -> None:
    documented = documented_fields("Exception record (value on `exceptions`)", "field")
    assert set(documented) == fields(ExceptionRecord) == set(schema("exception-record.json")["properties"])
    assert {f for f, version in documented.items() if version == "2"} == {"impact", "trimmed", "deadline"}


def test_every_outcome_attribute_and_data_field_is_in_the_model_and_the_json_schema_and_back() -> None:
    heading = "Outcome (value on `exception-outcomes`)"
    attributes = documented_fields(heading, "attribute")
    data = documented_fields(heading, "`data` field")
    generated = schema("outcome.json")
    assert set(attributes) == fields(Outcome) == set(generated["properties"])
    assert set(data) == fields(OutcomeData) == set(generated["$defs"]["OutcomeData"]["properties"])
    version_2 = {f for f, info in OutcomeData.model_fields.items() if (info.description or "").startswith("v2.")}
    assert {f for f, version in data.items() if version == "2"} == version_2


def test_every_notification_attribute_and_data_field_is_in_the_model_and_back() -> None:
    assert set(documented_fields("Notifications", "attribute")) == fields(Notification)
    assert set(documented_fields("Notifications", "`data` field")) == fields(NotificationData)


# --- the API ---------------------------------------------------------------------------------


def test_every_endpoint_the_page_names_is_served(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'api.db'}"))
    served = {(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops}
    documented = {
        (row["method"], name(row["path"])) for row in table("Resolution API (HTTP, JSON, OpenAPI at `/docs`)", "method")
    }
    assert documented - served == set()


# --- where it is read ------------------------------------------------------------------------


def test_the_readme_points_at_the_contract_and_nothing_points_outside_the_repository() -> None:
    assert "(docs/contract.md)" in (ROOT / "README.md").read_text()
    outside = "shared/" + "contracts"  # split, so this file does not name it
    sources = [ROOT / "README.md", *(p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*") if p.suffix in TEXT)]
    assert [str(p.relative_to(ROOT)) for p in sources if outside in p.read_text(errors="replace")] == []
