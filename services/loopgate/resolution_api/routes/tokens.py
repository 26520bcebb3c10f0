"""/v1/tokens (admin): create a bearer token (its secret is shown once), list, revoke."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Response, status

from loopgate.resolution_api import store
from loopgate.resolution_api.auth import CanManageTokens
from loopgate.resolution_api.deps import ServicesDep, reject_unstorable_params
from loopgate.resolution_api.errors import NotFound, responses
from loopgate.resolution_api.permissions import Role
from loopgate.resolution_api.schemas import TokenCreate, TokenCreated, TokenList, TokenRead

router = APIRouter(prefix="/v1/tokens", tags=["tokens"], dependencies=[Depends(reject_unstorable_params)])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a token", responses=responses(400, 401, 403))
async def create_token(body: TokenCreate, principal: CanManageTokens, services: ServicesDep) -> TokenCreated:
    async with services.db.write() as session, session.begin():
        row, secret = await store.create_token(
            session=session, name=body.name, role=Role(body.role), now=dt.datetime.now(dt.UTC)
        )
    return TokenCreated(**TokenRead.from_row(row).model_dump(), token=secret)


@router.get("", summary="List tokens (never their secrets)", responses=responses(401, 403))
async def list_tokens(principal: CanManageTokens, services: ServicesDep) -> TokenList:
    async with services.db.read() as session, session.begin():
        rows = await store.list_tokens(session=session)
    return TokenList(items=[TokenRead.from_row(r) for r in rows])


@router.delete(
    "/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a token (revoking twice is harmless)",
    responses=responses(401, 403, 404),
)
async def revoke_token(token_id: str, principal: CanManageTokens, services: ServicesDep) -> Response:
    async with services.db.write() as session, session.begin():
        row = await store.revoke_token(session=session, token_id=token_id, now=dt.datetime.now(dt.UTC))
    if row is None:
        raise NotFound(f"no token with id {token_id!r}")
    services.tokens.forget(token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
