"""JSON Schema files for upstream teams, generated from the models (never edited by hand).

`loopgate schemas generate` writes them to schemas/jsonschema/; a test fails when they are stale.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from loopgate_schemas.events import EVENT_MODELS
from loopgate_schemas.examples import valid_examples
from loopgate_schemas.exceptions import ExceptionRecord
from loopgate_schemas.outcomes import Outcome
from loopgate_schemas.training import TrainingRecord

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "jsonschema"


def _documents() -> dict[str, dict[str, object]]:
    models: dict[str, type[BaseModel]] = {f"event.{t}": m for t, m in EVENT_MODELS.items()}
    examples = {f"event.{t}": valid_examples(t) for t in EVENT_MODELS}
    models["exception-record"] = ExceptionRecord
    models["outcome"] = Outcome
    models["training-record"] = TrainingRecord
    docs: dict[str, dict[str, object]] = {}
    for name, model in sorted(models.items()):
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://loopgate.dev/schemas/{name}.json"
        if examples.get(name):  # the contract's valid examples of this event type, verbatim
            schema["examples"] = examples[name]
        docs[f"{name}.json"] = schema
    return docs


def render() -> dict[str, str]:
    return {name: json.dumps(doc, indent=2, sort_keys=True) + "\n" for name, doc in _documents().items()}


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def stale(directory: Path = SCHEMA_DIR) -> list[str]:
    """Files missing, different from the models, or left over from a removed model."""
    wanted = render()
    problems = [n for n, text in wanted.items() if not (directory / n).exists() or (directory / n).read_text() != text]
    problems += [p.name for p in directory.glob("*.json") if p.name not in wanted]
    return sorted(problems)
