"""The one way Loopgate reads its TOML files (detection.toml, routes, notifications, the single
sign-on mapping, the ops CLI's config, a `loopgate tune` proposal): read, decode as UTF-8, parse,
then validate into a strict pydantic model (unknown keys refused). Every problem is one error
naming the file and, for a bad value, each key path: `file: key.path: what is wrong; ...`, so a bad
file refuses to start and says where, whichever file it is."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from loopgate.common.errors import LoopgateError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """The base of every model a configuration file is read into: an unknown key is refused, and
    what was read cannot be changed afterwards."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def problems_of(err: ValidationError) -> str:
    """Every error of `err` as `key.path: message`, joined with '; '."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {str(e['msg']).removeprefix('Value error, ')}"
        for e in err.errors(include_url=False)
    )


class TomlError(LoopgateError):
    """A TOML file that cannot be used; the message names the file and what is wrong (each key)."""


def parse_toml(text: str, model: type[M], *, source: str, error: type[LoopgateError] = TomlError) -> M:
    """`text` (read from `source`) as `model`; `error(message)` naming the source and each bad key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise error(f"{source}: not valid TOML: {err}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise error(f"{source}: {problems_of(err)}") from None


def load_toml(path: Path, model: type[M], *, error: type[LoopgateError] = TomlError) -> M:
    """The file at `path` as `model`; `error(message)` naming the file and what is wrong otherwise:
    missing, unreadable, not UTF-8, not TOML, or each bad key."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as err:
        raise error(f"{path}: cannot read it: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{path}: not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start})") from None
    return parse_toml(text, model, source=str(path), error=error)
