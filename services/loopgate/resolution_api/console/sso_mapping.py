"""Who a person the identity provider vouched for is in Loopgate: the single sign-on mapping file
(LOOPGATE_SSO_MAPPING_FILE, TOML) says which groups or claims become which role and clients.

    groups_claim = "groups"            # the ID token's claim that lists the person's groups (default)
    name_claim = "preferred_username"  # what names the person in the history and audit (default)

    [[map]]                            # entries in order; the first that matches decides the role
    group = "northwind-reviewers"      # a group the person is in ...
    role = "reviewer"
    clients = ["northwind"]            # a reviewer must name its clients

    [[map]]
    claim = "email_domain"             # ... or a claim of the ID token with this value (or a list holding it)
    value = "agency.example"
    role = "operator"                  # no clients: agency-wide

Loaded strictly when the API starts (common/strict_toml.py): an unknown key, an unknown role, a
reviewer without clients or a client id with bad characters refuses to start, naming the key.
`grant_for` is the pure function the callback calls: a person no entry matches gets None."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, StringConstraints, field_validator, model_validator

from loopgate.common.errors import LoopgateError
from loopgate.common.strict_toml import Strict, load_toml
from loopgate.resolution_api.access.permissions import SCOPED_ROLES, Role
from loopgate.resolution_api.access.tokens import CLIENT_ID, CLIENTS_MAX

ClaimName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/-]+$")]
ClaimValue = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class SsoMappingError(LoopgateError):
    """The mapping file cannot be used; the message names the file and the key."""


class Entry(Strict):
    """One `[[map]]` entry: a group (or a claim and its value), and the role and clients it grants."""

    group: ClaimValue | None = None
    claim: ClaimName | None = None
    value: ClaimValue | None = None
    role: Role
    clients: list[str] | None = Field(default=None, max_length=CLIENTS_MAX)

    @field_validator("role")
    @classmethod
    def _a_person_role(cls, role: Role) -> Role:
        if role == Role.SERVICE:
            raise ValueError("a person cannot sign in as service (the dispatcher's role)")
        return role

    @field_validator("clients")
    @classmethod
    def _client_ids(cls, clients: list[str] | None) -> list[str] | None:
        if clients is None:
            return None
        if not clients:
            raise ValueError("name at least one client, or leave clients out for agency-wide access")
        bad = next((c for c in clients if not CLIENT_ID.fullmatch(c)), None)
        if bad is not None:
            raise ValueError(f"{bad!r} is not a client id (letters, digits, '.', '_', ':', '-'; at most 128)")
        return clients

    @model_validator(mode="after")
    def _valid(self) -> Self:
        if (self.group is None) == (self.claim is None):
            raise ValueError("give group, or claim with value (not both)")
        if (self.claim is None) != (self.value is None):
            raise ValueError("claim and value go together")
        if self.role in SCOPED_ROLES and self.clients is None:
            raise ValueError(f"clients: a {self.role.value} must name the clients it serves")
        return self

    def matches(self, claims: Mapping[str, Any], groups: frozenset[str]) -> bool:
        if self.group is not None:
            return self.group in groups
        given = claims.get(self.claim or "")
        if isinstance(given, list):
            return self.value in given
        return isinstance(given, str | int | bool) and str(given) == self.value


class SsoMapping(Strict):
    """The mapping file."""

    groups_claim: ClaimName = "groups"
    name_claim: ClaimName = "preferred_username"
    map: list[Entry] = Field(min_length=1, max_length=1000)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a person may be in the console: a role and its clients (None: agency-wide)."""

    role: Role
    clients: list[str] | None


def groups_of(claims: Mapping[str, Any], groups_claim: str) -> frozenset[str]:
    """The person's groups: the claim's strings (a list, or one string); a leading '/' (a full path,
    as Keycloak may send) is matched without it too."""
    given = claims.get(groups_claim)
    listed = [given] if isinstance(given, str) else given if isinstance(given, list) else []
    names = {g for g in listed if isinstance(g, str)}
    return frozenset(names | {g.removeprefix("/") for g in names})


def grant_for(mapping: SsoMapping, claims: Mapping[str, Any]) -> Grant | None:
    """The role of the first entry the person matches; the clients of every matching entry with
    that role together (any agency-wide one: agency-wide). None: no entry matches."""
    groups = groups_of(claims, mapping.groups_claim)
    matched = [entry for entry in mapping.map if entry.matches(claims, groups)]
    if not matched:
        return None
    role = matched[0].role
    same_role = [entry for entry in matched if entry.role == role]
    if any(entry.clients is None for entry in same_role):
        return Grant(role=role, clients=None)
    clients = sorted({client for entry in same_role for client in entry.clients or ()})
    return Grant(role=role, clients=clients)


def load_mapping(path: Path) -> SsoMapping:
    return load_toml(path, SsoMapping, error=SsoMappingError)
