"""Secrets read from files (a mounted Kubernetes Secret, a compose `secrets:` entry), the one place
that reads them: a setting `X` may instead be given as `X_FILE`, never both. One trailing newline is
not part of the secret; a missing, unreadable, non-UTF-8 or empty file is an error naming the setting."""

from __future__ import annotations

from pathlib import Path

from loopgate.common.errors import LoopgateError


class SecretFileError(LoopgateError, ValueError):
    """A secret's file cannot give a secret; `setting` is the setting that names the file."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


def read_secret_file(setting: str, path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretFileError(setting, f"file {path} does not exist") from None
    except IsADirectoryError:
        raise SecretFileError(setting, f"{path} is a directory, not a file") from None
    except PermissionError:
        raise SecretFileError(setting, f"file {path} cannot be read (permission denied)") from None
    except UnicodeDecodeError:
        raise SecretFileError(setting, f"file {path} is not UTF-8 text") from None
    except OSError as err:
        raise SecretFileError(setting, f"file {path} cannot be read ({err.__class__.__name__})") from None
    text = text.removesuffix("\n").removesuffix("\r")  # a mounted secret often ends with one newline
    if not text:
        raise SecretFileError(setting, f"file {path} is empty")
    if "\n" in text or "\r" in text:
        raise SecretFileError(setting, f"file {path} holds more than one line (a secret is one line)")
    return text


def inline_or_file(setting: str, inline: str, path: Path | None) -> str:
    """The value given directly (`LOOPGATE_X`) or through its file (`LOOPGATE_X_FILE`); "" when neither."""
    if path is None:
        return inline
    if inline:
        env = f"LOOPGATE_{setting.upper()}"
        raise SecretFileError(setting, f"set either {env} or {env}_FILE, not both")
    return read_secret_file(f"{setting}_file", path)
