"""/v1/tokens (admin): create a bearer token (its secret is shown once), list, revoke (tokens.py
does the work)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response, status

from loopgate.resolution_api.auth import CanManageTokens
from loopgate.resolution_api.deps import ServicesDep, reject_unstorable_params
from loopgate.resolution_api.errors import responses
from loopgate.resolution_api.permissions import Role
from loopgate.resolution_api.schemas import TokenCreate, TokenCreated, TokenList, TokenRead

router = APIRouter(prefix="/v1/tokens", tags=["tokens"], dependencies=[Depends(reject_unstorable_params)])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a token", responses=responses(400, 401, 403, 413))
async def create_token(body: TokenCreate, principal: CanManageTokens, services: ServicesDep) -> TokenCreated:
    row, secret = await services.tokens.create(name=body.name, role=Role(body.role))
    return TokenCreated(**TokenRead.from_row(row).model_dump(), token=secret)


@router.get("", summary="List tokens (never their secrets)", responses=responses(401, 403))
async def list_tokens(principal: CanManageTokens, services: ServicesDep) -> TokenList:
    return TokenList(items=[TokenRead.from_row(r) for r in await services.tokens.list()])


@router.delete(
    "/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a token (revoking twice is harmless)",
    responses=responses(401, 403, 404),
)
async def revoke_token(token_id: str, principal: CanManageTokens, services: ServicesDep) -> Response:
    await services.tokens.revoke(token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
