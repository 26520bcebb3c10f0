"""Tokens and roles (resolution_api/access/permissions.py), without a database."""

from __future__ import annotations

import hashlib

import pytest

from loopgate.resolution_api.access.permissions import Permission, Role, allows
from loopgate.resolution_api.access.tokens import hash_token, new_token


def test_a_token_is_stored_as_its_sha256_hex_digest() -> None:
    assert hash_token("lg_secret") == hashlib.sha256(b"lg_secret").hexdigest()
    assert len(hash_token("lg_secret")) == 64


def test_new_tokens_are_long_random_and_prefixed() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(t.startswith("lg_") and len(t) >= 40 for t in tokens)


def test_service_may_only_create_exceptions() -> None:
    assert {p for p in Permission if allows(Role.SERVICE, p)} == {Permission.CREATE}


def test_operator_may_read_and_work_exceptions_but_not_create_reopen_or_manage_tokens() -> None:
    assert {p for p in Permission if allows(Role.OPERATOR, p)} == {
        Permission.READ,
        Permission.WORK,
        Permission.BULK_WORK,
        Permission.SILENCE,
    }


def test_a_reviewer_works_one_exception_at_a_time_within_its_scope() -> None:
    assert {p for p in Permission if allows(Role.REVIEWER, p)} == {Permission.READ, Permission.WORK}


@pytest.mark.parametrize("permission", list(Permission))
def test_admin_may_do_everything(permission: Permission) -> None:
    assert allows(Role.ADMIN, permission)
