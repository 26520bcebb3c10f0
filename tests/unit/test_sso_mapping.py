"""The single sign-on mapping file (console/sso_mapping.py) and settings (console/sso.py): what
refuses to start, naming the key, and who the mapping makes of a person's claims."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loopgate.common.settings import Settings
from loopgate.resolution_api.access.permissions import Role
from loopgate.resolution_api.console.sso import SsoSettingsError, load_sso_config
from loopgate.resolution_api.console.sso_mapping import Grant, SsoMapping, SsoMappingError, grant_for, load_mapping

REVIEWERS = '[[map]]\ngroup = "northwind-reviewers"\nrole = "reviewer"\nclients = ["northwind"]\n'
EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "sso-mapping.example.toml"


def load(tmp_path: Path, text: str) -> SsoMapping:
    path = tmp_path / "sso-mapping.toml"
    path.write_text(text)
    return load_mapping(path)


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(SsoMappingError) as caught:
        load(tmp_path, text)
    return str(caught.value)


def test_the_deployed_example_loads() -> None:
    mapping = load_mapping(EXAMPLE)
    assert grant_for(mapping, {"groups": ["northwind-reviewers"]}) == Grant(Role.REVIEWER, ["northwind"])


def test_an_unknown_key_is_refused_naming_it(tmp_path: Path) -> None:
    assert "map.0.clinets: Extra inputs are not permitted" in refusal(tmp_path, REVIEWERS + 'clinets = ["x"]\n')


def test_an_unknown_top_level_key_is_refused_naming_it(tmp_path: Path) -> None:
    assert "group_claim: Extra inputs are not permitted" in refusal(tmp_path, 'group_claim = "roles"\n' + REVIEWERS)


def test_an_unknown_role_is_refused_naming_the_key(tmp_path: Path) -> None:
    message = refusal(tmp_path, '[[map]]\ngroup = "x"\nrole = "superuser"\n')
    assert "map.0.role: Input should be 'service', 'operator', 'admin', 'reviewer' or 'analyst'" in message


def test_the_service_role_is_refused_for_people(tmp_path: Path) -> None:
    assert "map.0.role: a person cannot sign in as service" in refusal(
        tmp_path, '[[map]]\ngroup = "x"\nrole = "service"\n'
    )


def test_a_reviewer_without_clients_is_refused(tmp_path: Path) -> None:
    assert "clients: a reviewer must name the clients it serves" in refusal(
        tmp_path, '[[map]]\ngroup = "x"\nrole = "reviewer"\n'
    )


def test_an_empty_clients_list_is_refused_naming_the_key(tmp_path: Path) -> None:
    assert "map.0.clients: name at least one client" in refusal(
        tmp_path, '[[map]]\ngroup = "x"\nrole = "reviewer"\nclients = []\n'
    )


@pytest.mark.parametrize("client", ["north wind", "../contoso", "-northwind", "", "n" * 129, "north\nwind"])
def test_a_client_id_with_bad_characters_is_refused_naming_the_key(tmp_path: Path, client: str) -> None:
    text = f'[[map]]\ngroup = "x"\nrole = "reviewer"\nclients = ["northwind", {json.dumps(client)}]\n'
    assert "map.0.clients: " in refusal(tmp_path, text)


def test_group_and_claim_together_are_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, '[[map]]\ngroup = "x"\nclaim = "hd"\nvalue = "a"\nrole = "operator"\n')
    assert "map.0: give group, or claim with value" in message


def test_a_claim_without_its_value_is_refused(tmp_path: Path) -> None:
    assert "map.0: claim and value go together" in refusal(tmp_path, '[[map]]\nclaim = "hd"\nrole = "operator"\n')


def test_a_file_without_entries_is_refused(tmp_path: Path) -> None:
    assert "map:" in refusal(tmp_path, 'groups_claim = "groups"\n')


def test_a_file_that_is_not_toml_is_refused_naming_the_file(tmp_path: Path) -> None:
    assert "sso-mapping.toml" in refusal(tmp_path, "[[map]\n")


def test_the_first_matching_entry_decides_the_role(tmp_path: Path) -> None:
    mapping = load(
        tmp_path, '[[map]]\ngroup = "leads"\nrole = "admin"\n' + '[[map]]\ngroup = "ops"\nrole = "operator"\n'
    )
    assert grant_for(mapping, {"groups": ["ops", "leads"]}) == Grant(Role.ADMIN, None)
    assert grant_for(mapping, {"groups": ["ops"]}) == Grant(Role.OPERATOR, None)


def test_a_reviewer_of_two_clients_gets_both(tmp_path: Path) -> None:
    mapping = load(tmp_path, REVIEWERS + REVIEWERS.replace("northwind", "contoso"))
    assert grant_for(mapping, {"groups": ["contoso-reviewers", "northwind-reviewers"]}) == Grant(
        Role.REVIEWER, ["contoso", "northwind"]
    )


def test_nobody_matching_gets_no_grant(tmp_path: Path) -> None:
    mapping = load(tmp_path, REVIEWERS)
    assert grant_for(mapping, {"groups": ["marketing"]}) is None
    assert grant_for(mapping, {}) is None
    assert grant_for(mapping, {"groups": "northwind-reviewers-not"}) is None
    assert grant_for(mapping, {"groups": [{"name": "northwind-reviewers"}]}) is None


def test_a_full_group_path_matches_its_name(tmp_path: Path) -> None:
    assert grant_for(load(tmp_path, REVIEWERS), {"groups": ["/northwind-reviewers"]}) == Grant(
        Role.REVIEWER, ["northwind"]
    )


def test_the_groups_claim_is_configurable(tmp_path: Path) -> None:
    mapping = load(tmp_path, 'groups_claim = "roles"\n' + REVIEWERS)
    assert grant_for(mapping, {"roles": ["northwind-reviewers"]}) == Grant(Role.REVIEWER, ["northwind"])
    assert grant_for(mapping, {"groups": ["northwind-reviewers"]}) is None


def test_a_claim_value_maps(tmp_path: Path) -> None:
    mapping = load(tmp_path, '[[map]]\nclaim = "hd"\nvalue = "agency.example"\nrole = "analyst"\n')
    assert grant_for(mapping, {"hd": "agency.example"}) == Grant(Role.ANALYST, None)
    assert grant_for(mapping, {"hd": ["other", "agency.example"]}) == Grant(Role.ANALYST, None)
    assert grant_for(mapping, {"hd": "agency.example.evil"}) is None


# --- settings ------------------------------------------------------------------------------


def sso(tmp_path: Path, **overrides: Any) -> Settings:
    mapping = tmp_path / "map.toml"
    mapping.write_text(REVIEWERS)
    values: dict[str, Any] = {
        "sso_issuer": "https://login.example/realms/agency",
        "sso_client_id": "loopgate-console",
        "sso_client_secret": "s3cret",
        "sso_mapping_file": mapping,
        **overrides,
    }
    return Settings(**values)


def test_without_an_issuer_there_is_no_single_sign_on() -> None:
    assert load_sso_config(Settings()) is None


def test_a_complete_configuration_loads(tmp_path: Path) -> None:
    config = load_sso_config(sso(tmp_path, sso_redirect_base="https://console.example/"))
    assert config is not None
    assert config.redirect_uri == "https://console.example/console/sso/callback"
    assert config.provider_name == "login.example"


def test_the_secret_is_read_from_its_file_without_the_newline(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    config = load_sso_config(sso(tmp_path, sso_client_secret="", sso_client_secret_file=secret))
    assert config is not None and config.client_secret == "from-a-file"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"sso_client_id": ""}, "sso_client_id: required"),
        ({"sso_mapping_file": None}, "sso_mapping_file: required"),
        ({"sso_client_secret": ""}, "sso_client_secret: required"),
        (
            {"sso_client_secret": "", "sso_client_secret_file": Path("/nonexistent")},
            "sso_client_secret_file: file /nonexistent does not exist",
        ),
        (
            {"sso_client_secret_file": Path("/nonexistent")},
            "sso_client_secret: set either LOOPGATE_SSO_CLIENT_SECRET or LOOPGATE_SSO_CLIENT_SECRET_FILE, not both",
        ),
        (
            {"sso_issuer": "http://login.example/realms/agency"},
            "sso_issuer: 'http://login.example/realms/agency' must be",
        ),
        ({"sso_issuer": "ftp://127.0.0.1/x"}, "sso_issuer:"),
        ({"sso_scopes": "profile email"}, "sso_scopes: must include openid"),
        ({"sso_redirect_base": "console.example"}, "sso_redirect_base:"),
    ],
)
def test_a_bad_setting_refuses_to_start_naming_it(tmp_path: Path, overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(SsoSettingsError, match="^" + named.replace("(", r"\(")):
        load_sso_config(sso(tmp_path, **overrides))


def test_plain_http_is_allowed_on_the_loopback_only(tmp_path: Path) -> None:
    assert load_sso_config(sso(tmp_path, sso_issuer="http://127.0.0.1:8080/realms/test")) is not None
    assert load_sso_config(sso(tmp_path, sso_issuer="http://localhost:8080/realms/test")) is not None


def test_the_readmes_example_loads(tmp_path: Path) -> None:
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    section = readme[readme.index("**The mapping file**") :]
    example = section[section.index("```toml\n") + len("```toml\n") : section.index("```\n", section.index("```toml"))]
    mapping = load(tmp_path, example)
    assert grant_for(mapping, {"groups": ["northwind-reviewers"]}) == Grant(Role.REVIEWER, ["northwind"])
    assert grant_for(mapping, {"groups": ["agency-oncall"]}) == Grant(Role.OPERATOR, None)
