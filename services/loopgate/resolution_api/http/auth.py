"""Bearer-token authentication and role checks, as FastAPI dependencies.

401 (with `WWW-Authenticate: Bearer`) when the token is missing, unknown or revoked (tokens.py
verifies it); 403 when its role may not do what is asked (permissions.py says who may do what)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from loopgate.resolution_api.access.permissions import AGENCY_WIDE_ONLY, Permission, allows
from loopgate.resolution_api.access.scoping import act_as
from loopgate.resolution_api.access.tokens import Principal
from loopgate.resolution_api.http.deps import ServicesDep
from loopgate.resolution_api.http.errors import Forbidden, Unauthorized
from loopgate.resolution_api.review.blind import see_as

bearer = HTTPBearer(auto_error=False, description="A token made with `loopgate api tokens create`")


async def authenticate(
    services: ServicesDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    principal = await services.tokens.verify(credentials.credentials)
    if principal is None:
        raise Unauthorized("invalid, expired or revoked bearer token", invalid=True)
    act_as(principal.scope)  # every query of this request sees only what the token may (scoping.py)
    see_as(principal.name)  # and no decision sealed for a second review but its own (review/blind.py)
    return principal


def require(permission: Permission) -> Any:
    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not allows(principal.role, permission):
            raise Forbidden(f"role '{principal.role.value}' may not {permission.value}")
        if permission in AGENCY_WIDE_ONLY and not principal.scope.agency_wide:
            raise Forbidden(f"a token scoped to {principal.scope.describe()} may not {permission.value}")
        return principal

    return Depends(check)


CanCreate = Annotated[Principal, require(Permission.CREATE)]
CanRead = Annotated[Principal, require(Permission.READ)]
CanWork = Annotated[Principal, require(Permission.WORK)]
CanBulkWork = Annotated[Principal, require(Permission.BULK_WORK)]
CanReopen = Annotated[Principal, require(Permission.REOPEN)]
CanManageTokens = Annotated[Principal, require(Permission.MANAGE_TOKENS)]
CanSilence = Annotated[Principal, require(Permission.SILENCE)]
CanSeeUndelivered = Annotated[Principal, require(Permission.SEE_UNDELIVERED)]
