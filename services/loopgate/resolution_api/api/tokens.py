"""/v1/tokens (admin): create a bearer token (its secret is shown once), list, rotate, revoke;
/v1/audit (admin): who did which of those; /v1/whoami (any token): who you are and your scope.
tokens.py does the work."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from loopgate.resolution_api.access.permissions import Role
from loopgate.resolution_api.access.tokens import Principal
from loopgate.resolution_api.http.auth import CanManageTokens, authenticate
from loopgate.resolution_api.http.deps import ServicesDep, reject_unstorable_params
from loopgate.resolution_api.http.errors import responses
from loopgate.resolution_api.schemas import (
    AuditEntry,
    AuditPage,
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenRead,
    TokenRotate,
    Whoami,
)

router = APIRouter(tags=["tokens"], dependencies=[Depends(reject_unstorable_params)])


@router.post(
    "/v1/tokens",
    status_code=status.HTTP_201_CREATED,
    summary="Create a token",
    responses=responses(400, 401, 403, 409, 413),
)
async def create_token(body: TokenCreate, principal: CanManageTokens, services: ServicesDep) -> TokenCreated:
    row, secret = await services.tokens.create(
        name=body.name, role=Role(body.role), actor=principal.name, clients=body.clients, expires_at=body.expires_at
    )
    return TokenCreated(**TokenRead.from_row(row).model_dump(), token=secret)


@router.get("/v1/tokens", summary="List tokens (never their secrets)", responses=responses(401, 403))
async def list_tokens(principal: CanManageTokens, services: ServicesDep) -> TokenList:
    return TokenList(items=[TokenRead.from_row(r) for r in await services.tokens.list()])


@router.post(
    "/v1/tokens/{token_id}/rotate",
    summary="A new secret for a token; the old one works for the grace period",
    responses=responses(400, 401, 403, 404, 409, 413),
)
async def rotate_token(
    token_id: str, body: TokenRotate, principal: CanManageTokens, services: ServicesDep
) -> TokenCreated:
    row, secret = await services.tokens.rotate(
        token_id, grace=dt.timedelta(seconds=body.grace_seconds), actor=principal.name
    )
    return TokenCreated(**TokenRead.from_row(row).model_dump(), token=secret)


@router.delete(
    "/v1/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a token (revoking twice is harmless)",
    responses=responses(401, 403, 404),
)
async def revoke_token(token_id: str, principal: CanManageTokens, services: ServicesDep) -> Response:
    await services.tokens.revoke(token_id, actor=principal.name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/v1/audit", summary="Who created, rotated or revoked which token, newest first", responses=responses(401, 403)
)
async def audit(
    principal: CanManageTokens,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="`next_before` of the previous page")] = None,
) -> AuditPage:
    # The ids are 32-bit on PostgreSQL: a cursor past every id reads from the newest.
    rows = await services.tokens.audit(limit=limit + 1, before=None if before is None else min(before, 2**31 - 1))
    items = [AuditEntry.model_validate(r) for r in rows[:limit]]
    return AuditPage(items=items, next_before=items[-1].id if len(rows) > limit else None)


@router.get("/v1/whoami", summary="Who this token is, its role and what it may see", responses=responses(401))
async def whoami(principal: Annotated[Principal, Depends(authenticate)]) -> Whoami:
    scope = principal.scope
    return Whoami(
        name=principal.name,
        role=principal.role,
        scope=scope.describe(),
        clients=None if scope.clients is None else sorted(scope.clients),
        queues=None if scope.queues is None else sorted(scope.queues),
        expires_at=principal.expires_at,
    )
