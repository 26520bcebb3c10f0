"""`loopgate export`: the API's training-data export over HTTP, written whole or not at all."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from loopgate.cli.export import ExportFailed, export_to
from loopgate.cli.main import app
from tests.fixtures.api import Api

runner = CliRunner()


async def test_export_to_writes_the_api_stream_line_for_line(api: Api) -> None:
    ids = []
    for decision in ("confirmed", "false_positive"):
        exc = await api.create()
        assert (await api.act(exc["id"], "resolve", {"decision": decision, "reason": "seen"})).status_code == 200
        ids.append(exc["id"])
    await api.create()  # open: not exported
    api.http.headers.update(api.auth("operator"))
    out = io.BytesIO()

    records = await export_to(out, client=api.http, params=[("decision", "false_positive")])

    assert records == 1
    (line,) = out.getvalue().splitlines()
    assert orjson.loads(line)["exception_id"] == ids[1]


async def test_export_to_names_the_refusal(api: Api) -> None:
    api.http.headers.update(api.auth("operator"))

    with pytest.raises(ExportFailed, match=r"\(422\).*since"):
        await export_to(io.BytesIO(), client=api.http, params=[("since", "yesterday")])


def test_the_command_leaves_no_file_when_the_api_cannot_be_reached(tmp_path: Path) -> None:
    target = tmp_path / "training.ndjson"

    result = runner.invoke(app, ["export", "--url", "http://127.0.0.1:9", "--token", "lg_x", "--output", str(target)])

    assert result.exit_code == 1
    assert "cannot read http://127.0.0.1:9/v1/export/training-data: ConnectError" in result.stderr
    assert not target.exists()


def test_the_command_wants_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOPGATE_EXPORT_TOKEN", raising=False)

    result = runner.invoke(app, ["export", "--url", "http://127.0.0.1:9"])

    assert result.exit_code == 2
    assert "no token" in result.stderr
