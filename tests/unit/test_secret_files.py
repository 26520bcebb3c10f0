"""A secret may be given as a file (`LOOPGATE_X_FILE`: a mounted Kubernetes Secret or compose
secret) instead of the environment, never both; a file that cannot give one secret is refused with
the setting's name and what is wrong, never read as an empty or partial secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from loopgate.common.secrets import SecretFileError, inline_or_file, read_secret_file
from loopgate.common.settings import Settings

PG = "postgresql+asyncpg://loopgate_app:s3cret@postgres:5432/loopgate"


def test_one_trailing_newline_is_not_part_of_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("lg_abc\n")

    assert read_secret_file("api_token_file", path) == "lg_abc"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (b"\n", "is empty"),
        (b"\xff\xfe not utf-8", "is not UTF-8 text"),
        (b"lg_one\nlg_two\n", "holds more than one line (a secret is one line)"),
    ],
    ids=["empty", "only-a-newline", "not-utf8", "two-lines"],
)
def test_a_file_that_cannot_give_one_secret_is_refused_naming_the_setting(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)

    with pytest.raises(SecretFileError) as refused:
        read_secret_file("api_token_file", path)

    assert str(refused.value) == f"api_token_file: file {path} {problem}"


def test_a_missing_file_or_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match=r"^api_token_file: file .*/absent does not exist$"):
        read_secret_file("api_token_file", tmp_path / "absent")
    with pytest.raises(SecretFileError, match=r"^api_token_file: .* is a directory, not a file$"):
        read_secret_file("api_token_file", tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("lg_abc")
    path.chmod(0)

    with pytest.raises(SecretFileError, match=r"cannot be read \(permission denied\)$"):
        read_secret_file("api_token_file", path)


def test_a_value_and_its_file_together_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("lg_abc")

    with pytest.raises(SecretFileError) as refused:
        inline_or_file("api_token", "lg_other", path)

    assert str(refused.value) == "api_token: set either LOOPGATE_API_TOKEN or LOOPGATE_API_TOKEN_FILE, not both"
    assert inline_or_file("api_token", "lg_other", None) == "lg_other"
    assert inline_or_file("api_token", "", path) == "lg_abc"


def test_the_database_url_is_read_from_its_file_when_the_settings_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "database-url"
    path.write_text(PG + "\n")
    monkeypatch.setenv("LOOPGATE_DATABASE_URL_FILE", str(path))
    monkeypatch.delenv("LOOPGATE_DATABASE_URL", raising=False)

    assert Settings().database_url == PG


@pytest.mark.parametrize("both", [True, False], ids=["with-the-url-too", "file-missing"])
def test_a_bad_database_url_file_refuses_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, both: bool
) -> None:
    path = tmp_path / "database-url"
    if both:
        path.write_text(PG)
        monkeypatch.setenv("LOOPGATE_DATABASE_URL", "sqlite+aiosqlite:///x.db")
    else:
        monkeypatch.delenv("LOOPGATE_DATABASE_URL", raising=False)
    monkeypatch.setenv("LOOPGATE_DATABASE_URL_FILE", str(path))

    with pytest.raises(ValidationError) as refused:
        Settings()

    expected = (
        "database_url: set either LOOPGATE_DATABASE_URL or LOOPGATE_DATABASE_URL_FILE, not both"
        if both
        else f"database_url_file: file {path} does not exist"
    )
    assert expected in str(refused.value)
    assert "s3cret" not in str(refused.value)  # the refusal never shows the secret


def test_the_dispatcher_reads_its_token_file_afresh_each_time(tmp_path: Path) -> None:
    path = tmp_path / "token"
    settings = Settings(api_token="", api_token_file=path)

    with pytest.raises(SecretFileError, match="does not exist"):
        settings.dispatcher_token()
    path.write_text("lg_first\n")
    assert settings.dispatcher_token() == "lg_first"
    path.write_text("lg_rotated\n")
    assert settings.dispatcher_token() == "lg_rotated"
