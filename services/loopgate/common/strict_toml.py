"""The one way Loopgate reads its TOML files (routes, notifications, the single sign-on mapping):
parse, then validate into a strict pydantic model (unknown keys refused), every problem named by
its key path, `file: key.path: what is wrong; ...`, so a bad file refuses to start and says where."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

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


def load_strict_toml(path: Path, model: type[M], error: type[Exception]) -> M:
    """The file at `path` as `model`; `error(message)` naming the file and each bad key otherwise."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise error(f"{path}: {err}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise error(f"{path}: {problems_of(err)}") from None
