"""One TOML loader (common/strict_toml.py: load_toml) for every file Loopgate reads: whichever file
is missing, not UTF-8, not TOML or has a bad key, the error is the loader's own (a LoopgateError)
and names the file and what is wrong, never a bare UnicodeDecodeError or TOMLDecodeError."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import typer

from loopgate.cli import ops
from loopgate.common.errors import LoopgateError
from loopgate.common.strict_toml import TomlError, load_toml
from loopgate.detector.config import ConfigError, load_detection_config
from loopgate.resolution_api.console.sso_mapping import SsoMappingError, load_mapping
from loopgate.resolution_api.notifications.config import NotificationsConfigError, load_notifications
from loopgate.resolution_api.queues.routing import RoutesError, load_routes

LOADERS: dict[str, tuple[Callable[[Path], object], type[LoopgateError]]] = {
    "detection.toml": (load_detection_config, ConfigError),
    "routes.toml": (load_routes, RoutesError),
    "notifications.toml": (load_notifications, NotificationsConfigError),
    "sso-mapping.toml": (load_mapping, SsoMappingError),
    "ops.toml": (lambda path: load_toml(path, ops.OpsConfig), TomlError),
}

HOSTILE: dict[str, tuple[bytes | None, str]] = {
    # case -> (the file's bytes, None: no file; what the error says of it)
    "missing": (None, "no such file"),
    "latin-1": ('url = "café"\n'.encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 10)"),
    "a lone continuation byte": (b"\x80", "not UTF-8 text (byte 0x80 at offset 0)"),
    "utf-16": ('url = "x"\n'.encode("utf-16"), "not UTF-8 text (byte 0xff at offset 0)"),
    "an unclosed table": (b"[thresholds\n", "not valid TOML: Expected ']'"),
    "a NUL byte": (b'url = "a\x00b"\n', "not valid TOML: Illegal character"),
    "an unknown key": (b"nonsense_key = 1\n", "nonsense_key: Extra inputs are not permitted"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
@pytest.mark.parametrize("name", list(LOADERS))
def test_a_hostile_file_is_one_clear_error_naming_the_file(tmp_path: Path, name: str, case: str) -> None:
    loader, error = LOADERS[name]
    content, said = HOSTILE[case]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(error) as caught:
        loader(path)

    message = str(caught.value)
    assert isinstance(caught.value, LoopgateError)
    assert message.startswith(f"{path}: ") and said in message, message


def test_a_directory_in_place_of_the_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "detection.toml"
    path.mkdir()
    with pytest.raises(ConfigError) as caught:
        load_detection_config(path)
    assert str(caught.value) == f"{path}: cannot read it: Is a directory"


def test_a_bad_value_names_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "detection.toml"
    path.write_text("[anomaly]\ntrend_alpha = 'fast'\n")
    with pytest.raises(ConfigError) as caught:
        load_detection_config(path)
    expected = "anomaly.trend_alpha: Input should be a valid number, unable to parse string as a number"
    assert str(caught.value) == f"{path}: {expected}"


def test_the_ops_cli_says_a_bad_config_file_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ops.toml"
    path.write_bytes(b'token = "caf\xe9"\n')
    monkeypatch.setenv("LOOPGATE_OPS_CONFIG", str(path))

    with pytest.raises(typer.Exit) as stopped:
        ops.target(None, None)

    assert stopped.value.exit_code == ops.EXIT_CODES["usage"]
    assert "not UTF-8 text" in capsys.readouterr().err


def test_a_token_that_is_not_text_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "ops.toml"
    path.write_text("token = 42\n")
    with pytest.raises(TomlError, match=r"ops\.toml: token: Input should be a valid string"):
        load_toml(path, ops.OpsConfig)
