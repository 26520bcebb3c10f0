"""The README's settings table is generated from the settings class and never stale."""

from __future__ import annotations

import pytest

from loopgate.common.settings import Settings
from loopgate_tools import settings_doc


def test_the_readme_settings_table_is_up_to_date() -> None:
    readme = settings_doc.README.read_text()
    assert settings_doc.render(readme) == readme, "stale settings table: run `loopgate-tools settings-doc`"


def test_every_setting_has_a_row_and_a_description() -> None:
    table = settings_doc.settings_table()
    for name, field in Settings.model_fields.items():
        assert f"| `LOOPGATE_{name.upper()}` |" in table
        assert field.description, f"setting {name} has no description"


def test_a_readme_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        settings_doc.render("# no table here\n")
