"""The JSON Schema files upstream teams code against are generated from the models."""

from loopgate_schemas import jsonschema


def test_committed_json_schema_files_match_the_models() -> None:
    assert jsonschema.stale() == [], "run `loopgate schemas generate` and commit schemas/jsonschema/"


def test_there_is_one_schema_per_event_type_plus_exception_and_outcome() -> None:
    assert sorted(jsonschema.render()) == [
        "event.bid.adjusted.json",
        "event.budget.pacing.json",
        "event.campaign.constraint_violated.json",
        "event.content.generated.json",
        "event.delivery.report.json",
        "event.placement.trafficked.json",
        "exception-record.json",
        "outcome.json",
    ]
