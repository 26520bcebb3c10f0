"""The exports labelling tools read (issue 26 item 4), each loaded by the real library that reads
it: Label Studio tasks checked by label-studio-sdk's own task models and labeling-config checks,
and the Hugging Face dataset loaded by `datasets.load_dataset` (offline, its cache in tmp_path).
Filters and scope are the training export's; a filter that matches nothing gives an empty export;
a row that cannot be exported is set aside with its reason and the export goes on."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from huggingface_hub import DatasetCard
from label_studio_sdk.label_interface import LabelInterface
from label_studio_sdk.types.import_api_request import ImportApiRequest
from label_studio_sdk.types.prediction_request import PredictionRequest
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from loopgate.cli.export import ExportFailed
from loopgate.cli.labelling_export import ExportFormat, export_folder
from loopgate.cli.main import app
from loopgate.common.settings import Settings
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.outcomes.labelling import DATASET_FEATURES, LABEL_NAMES
from loopgate_schemas.outcomes import outcome_id_for
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.clock import FakeClock

START = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
runner = CliRunner()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def api(api_factory: ApiFactory, api_settings: Settings, clock: FakeClock) -> AsyncIterator[Api]:
    settings = api_settings.model_copy(update={"export_page_rows": 2})  # several pages in every test
    async with api_factory(settings, clock) as running:
        yield running


@pytest.fixture
def datasets_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The `datasets` module, offline and with its caches in tmp_path: nothing downloads."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    return datasets


def _post(caption: str = "Buy now") -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"evt-{uuid.uuid4().hex[:8]}",
        "source": "content-pipeline",
        "type": "content.generated",
        "time": "2026-11-19T23:59:00Z",
        "subject": "post-1",
        "data": {"content_id": "post-1", "client_id": "northwind", "platform": "x", "caption": caption,
                 "model": "copywriter-v3", "model_confidence": 0.42, "brand_safety_score": 0.4},
    }  # fmt: skip


async def _decided(api: Api, clock: FakeClock, decision: str, **record: Any) -> str:
    exc = await api.create(detected_at=clock().isoformat(), **record)
    clock.advance(60)
    body: dict[str, Any] = {"decision": decision, "reason": f"{decision} by test"}
    if decision == "corrected":
        body["correction"] = {"caption": {"before": "Buy now", "after": "Shop the sale"}}
    response = await api.act(exc["id"], "resolve", body)
    assert response.status_code == 200, response.text
    clock.advance(1)  # resolved before the export's default until (now)
    return str(exc["id"])


async def _three_decisions(api: Api, clock: FakeClock) -> list[str]:
    """A corrected post (score 0.4), a false-positive bid (score 1.2) and a dismissed one (0.9)."""
    corrected = await _decided(
        api, clock, "corrected", rule_id="brand_safety", kind="policy", severity="critical",
        source="content-pipeline.events", event_type="content.generated", subject="post-1", client_id="northwind",
        observed={"brand_safety_score": 0.4}, threshold={"brand_safety_score": 0.7}, score=0.4, event=_post(),
    )  # fmt: skip
    false_positive = await _decided(api, clock, "false_positive", rule_id="bid_over_cap", score=1.2)
    dismissed = await _decided(api, clock, "dismissed", rule_id="bid_over_cap", score=0.9)
    return [corrected, false_positive, dismissed]


async def _label_studio(api: Api, role: str = "operator", **params: Any) -> list[dict[str, Any]]:
    response = await api.http.get("/v1/export/label-studio", params=params, headers=api.auth(role))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    tasks: list[dict[str, Any]] = orjson.loads(response.content)
    return tasks


async def _label_config(api: Api) -> LabelInterface:
    response = await api.http.get("/v1/export/label-studio/config", headers=api.auth("analyst"))
    assert response.status_code == 200, response.text
    interface = LabelInterface(response.text)
    interface.validate()  # the SDK's own checks of a labeling config: schema, names, to_name
    return interface


def _sdk_errors(interface: LabelInterface, task: dict[str, Any]) -> list[str]:
    """What label-studio-sdk finds wrong with a task: its import model, its data for the config's
    objects, and each prediction's and annotation's results against the config's controls."""
    # The import API's model (raises on what it would refuse). Its generated PredictionRequest wants
    # the `task` id Label Studio assigns at import, so each prediction is checked with one given.
    ImportApiRequest.model_validate({key: value for key, value in task.items() if key != "predictions"})
    for prediction in task.get("predictions", []):
        PredictionRequest.model_validate({**prediction, "task": 1})
    errors = [] if interface.validate_task({"data": task["data"]}) else ["data lacks a value the config shows"]
    for prediction in task.get("predictions", []):
        errors += interface.validate_prediction(prediction, return_errors=True)
    for annotation in task.get("annotations", []):
        # validate_annotation answers only yes or no; the same check with its reasons:
        errors += interface.validate_prediction({**annotation, "score": None}, return_errors=True)
        errors += [] if interface.validate_annotation(annotation) else ["annotation refused"]
    return errors


async def test_label_studio_tasks_pass_the_sdks_checks_and_say_flag_decision_and_correction(
    api: Api, clock: FakeClock
) -> None:
    corrected, false_positive, dismissed = await _three_decisions(api, clock)
    interface = await _label_config(api)

    tasks = await _label_studio(api)

    assert [t["data"]["exception_id"] for t in tasks] == [corrected, false_positive, dismissed]
    for task in tasks:
        assert _sdk_errors(interface, task) == [], task
    post, bid, not_judged = tasks
    assert post["data"]["title"] == "brand_safety on post-1 for northwind"
    assert orjson.loads(post["data"]["event_text"]) == post["data"]["event"]
    assert post["data"]["event"]["data"]["caption"] == "Buy now"
    assert post["predictions"] == [
        {
            "model_version": "loopgate-detector:brand_safety",
            "score": 0.4,
            "result": [{"from_name": "flag", "to_name": "event", "type": "choices", "value": {"choices": ["problem"]}}],
        }
    ]
    assert post["annotations"][0]["result"] == [
        {"from_name": "flag", "to_name": "event", "type": "choices", "value": {"choices": ["problem"]}},
        {"from_name": "decision", "to_name": "event", "type": "choices", "value": {"choices": ["corrected"]}},
        {"from_name": "reason", "to_name": "event", "type": "textarea", "value": {"text": ["corrected by test"]}},
        {
            "from_name": "correction",
            "to_name": "event",
            "type": "textarea",
            "value": {"text": ['caption: "Buy now" -> "Shop the sale"']},
        },
    ]
    assert post["meta"]["outcome_id"] == outcome_id_for(corrected, 1)
    assert post["meta"]["correction"] == {"caption": {"before": "Buy now", "after": "Shop the sale"}}
    assert "score" not in bid["predictions"][0] and bid["data"]["detector_score"] == 1.2  # not a 0..1 score
    assert bid["annotations"][0]["result"][0]["value"] == {"choices": ["no_problem"]}
    assert [r["from_name"] for r in not_judged["annotations"][0]["result"]] == ["decision", "reason"]


async def test_the_sdks_checks_can_fail_a_task_that_breaks_the_config(api: Api, clock: FakeClock) -> None:
    await _decided(api, clock, "confirmed")
    interface = await _label_config(api)
    (task,) = await _label_studio(api)
    task["annotations"][0]["result"][1]["value"] = {"choices": ["approved"]}
    task["predictions"][0]["score"] = 3.0

    errors = _sdk_errors(interface, task)

    assert any("Invalid value for control 'decision'" in e for e in errors), errors
    assert any("Score must be between 0.00 and 1.00" in e for e in errors), errors
    assert not interface.validate_task({"data": {"title": "no event_text"}})


async def test_label_studio_export_takes_the_filters_and_an_empty_match_is_an_empty_array(
    api: Api, clock: FakeClock
) -> None:
    corrected, false_positive, _ = await _three_decisions(api, clock)

    assert [t["data"]["exception_id"] for t in await _label_studio(api, rule_id="brand_safety")] == [corrected]
    assert [t["data"]["exception_id"] for t in await _label_studio(api, decision="false_positive")] == [false_positive]
    empty = await api.http.get("/v1/export/label-studio?client_id=nobody", headers=api.auth("operator"))
    assert empty.status_code == 200 and empty.content == b"[]\n"
    refused = await api.http.get("/v1/export/label-studio?decision=approved", headers=api.auth("operator"))
    assert refused.status_code == 422 and "decision" in refused.text
    assert (await api.http.get("/v1/export/label-studio", headers=api.auth("service"))).status_code == 403


async def test_a_scoped_token_exports_its_clients_rows_only(api: Api, clock: FakeClock) -> None:
    northwind = await _decided(api, clock, "confirmed", client_id="northwind")
    await _decided(api, clock, "confirmed", client_id="contoso")
    made = await api.http.post(
        "/v1/tokens",
        json={"name": "nw-analyst", "role": "analyst", "clients": ["northwind"]},
        headers=api.auth("admin"),
    )
    scoped = {"Authorization": f"Bearer {made.json()['token']}"}

    tasks = orjson.loads((await api.http.get("/v1/export/label-studio", headers=scoped)).content)
    rows = (await api.http.get("/v1/export/huggingface", headers=scoped)).content.splitlines()

    assert [t["data"]["exception_id"] for t in tasks] == [northwind]
    assert [orjson.loads(r)["exception_id"] for r in rows] == [northwind]


async def test_the_huggingface_folder_loads_with_datasets_and_its_card_describes_it(
    api: Api, clock: FakeClock, tmp_path: Path, datasets_offline: Any
) -> None:
    corrected, false_positive, dismissed = await _three_decisions(api, clock)
    api.http.headers.update(api.auth("analyst"))
    folder = tmp_path / "verdicts"

    count = await export_folder(
        folder, export_format=ExportFormat.HUGGINGFACE, client=api.http, params=[("rule_id", "brand_safety")], now=NOW
    )
    assert count == 1
    everything = tmp_path / "everything"
    assert await export_folder(everything, export_format=ExportFormat.HUGGINGFACE, client=api.http, params=[], now=NOW)

    loaded = datasets_offline.load_dataset(
        "json", data_files=str(everything / "data.jsonl"), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert loaded.column_names == [name for name, _, _ in DATASET_FEATURES]
    assert loaded["exception_id"] == [corrected, false_positive, dismissed]
    assert loaded["label"] == [1, 0, -1] and loaded["decision"] == ["corrected", "false_positive", "dismissed"]
    assert loaded["text"] == ["Buy now", None, None]
    assert orjson.loads(loaded[0]["correction_json"]) == {"caption": {"before": "Buy now", "after": "Shop the sale"}}
    assert orjson.loads(loaded[0]["event_json"])["data"]["platform"] == "x"
    assert list(loaded["score"]) == [0.4, 1.2, 0.9]

    with_card = datasets_offline.load_dataset(str(everything), split="train", cache_dir=str(tmp_path / "cache2"))
    assert with_card.features["label"].names == list(LABEL_NAMES)
    assert with_card.features["label"].int2str(1) == "problem"
    assert with_card["exception_id"] == [corrected, false_positive, dismissed]

    card = DatasetCard.load(folder / "README.md").text  # the hub's own reader of a dataset card
    assert "- **Rows:** 1 in `data.jsonl`" in card
    assert "- **Time range:** from 2026-11-20T00:01:00Z to 2026-11-20T00:01:00Z (resolution times)." in card
    assert "- `rule_id` = `brand_safety`" in card
    assert "confirmed 0, false_positive 0, corrected 1, escalated 0, dismissed 0" in card
    assert "| 0 | `no_problem` | false_positive |" in card
    assert all(f"| `{name}` | {dtype} |" in card for name, dtype, _ in DATASET_FEATURES)
    assert not (tmp_path / "verdicts.part").exists()


async def test_a_filter_matching_nothing_gives_an_empty_dataset_whose_card_says_so(
    api: Api, clock: FakeClock, tmp_path: Path, datasets_offline: Any
) -> None:
    """`datasets` refuses any empty split ("corresponds to no data"): the folder is still written,
    its card (read by huggingface_hub's own DatasetCard) declares the columns and says why it is empty."""
    await _decided(api, clock, "confirmed")
    api.http.headers.update(api.auth("operator"))
    folder = tmp_path / "nothing"

    count = await export_folder(
        folder, export_format=ExportFormat.HUGGINGFACE, client=api.http, params=[("client_id", "nobody")], now=NOW
    )

    assert count == 0 and (folder / "data.jsonl").read_bytes() == b""
    card = DatasetCard.load(folder / "README.md")
    assert "- **Time range:** none: no decided exception matched the filters" in card.text
    assert "- `client_id` = `nobody`" in card.text
    features = datasets_offline.DatasetInfo._from_yaml_dict(card.data.to_dict()["dataset_info"]).features
    assert list(features) == [name for name, _, _ in DATASET_FEATURES]
    with pytest.raises(ValueError, match="corresponds to no data"):
        datasets_offline.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "cache"))


async def test_a_row_that_cannot_be_exported_is_set_aside_with_its_reason_and_the_exports_go_on(
    api: Api, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    made = [await _decided(api, clock, "confirmed") for _ in range(3)]
    async with api.services.db.write() as session, session.begin():
        await session.execute(sa.update(ExceptionRow).where(ExceptionRow.id == made[1]).values(kind="no-such-kind"))

    def counted(where: str) -> float:
        return REGISTRY.get_sample_value("loopgate_rows_set_aside_total", {"where": where}) or 0.0

    before = counted("label_studio_export"), counted("dataset_export")
    with caplog.at_level(logging.WARNING):
        tasks = await _label_studio(api)
        rows = (await api.http.get("/v1/export/huggingface", headers=api.auth("operator"))).content.splitlines()

    assert [t["data"]["exception_id"] for t in tasks] == [made[0], made[2]]
    assert [orjson.loads(r)["exception_id"] for r in rows] == [made[0], made[2]]
    assert (counted("label_studio_export"), counted("dataset_export")) == (before[0] + 1, before[1] + 1)
    reasons = [r.getMessage() for r in caplog.records if made[1] in r.getMessage()]
    assert len(reasons) == 2 and all("set aside" in r and "no-such-kind" in r for r in reasons), reasons


async def test_the_label_studio_folder_holds_the_tasks_and_their_config(
    api: Api, clock: FakeClock, tmp_path: Path
) -> None:
    ids = [await _decided(api, clock, "confirmed") for _ in range(3)]
    api.http.headers.update(api.auth("operator"))
    folder = tmp_path / "ls"

    count = await export_folder(folder, export_format=ExportFormat.LABEL_STUDIO, client=api.http, params=[], now=NOW)

    assert count == 3
    interface = LabelInterface((folder / "label_config.xml").read_text())
    tasks = orjson.loads((folder / "tasks.json").read_bytes())
    assert [t["data"]["exception_id"] for t in tasks] == ids
    assert all(_sdk_errors(interface, t) == [] for t in tasks)
    with pytest.raises(ExportFailed, match="exists already"):
        await export_folder(folder, export_format=ExportFormat.LABEL_STUDIO, client=api.http, params=[], now=NOW)
    with pytest.raises(ExportFailed, match=r"\(422\).*since"):
        await export_folder(
            tmp_path / "bad", export_format=ExportFormat.LABEL_STUDIO, client=api.http, params=[("since", "x")], now=NOW
        )
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad.part").exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--format", "csv", "-o", "x"], "--format 'csv' is not one of ndjson, label-studio, huggingface"),
        (["--format", "huggingface"], "--format huggingface writes a folder: name it with -o"),
    ],
)
def test_the_command_refuses_a_format_it_does_not_know_or_a_folder_format_to_stdout(args: list[str], said: str) -> None:
    result = runner.invoke(app, ["export", "--url", "http://127.0.0.1:9", "--token", "lg_x", *args])

    assert result.exit_code == 2
    assert said in result.stderr


def test_the_command_leaves_no_folder_when_the_api_cannot_be_reached(tmp_path: Path) -> None:
    target = tmp_path / "labels"

    result = runner.invoke(
        app, ["export", "--url", "http://127.0.0.1:9", "--token", "lg_x", "--format", "label-studio", "-o", str(target)]
    )

    assert result.exit_code == 1
    assert "cannot read http://127.0.0.1:9/v1/export/label-studio/config: ConnectError" in result.stderr
    assert not target.exists() and not (tmp_path / "labels.part").exists()
