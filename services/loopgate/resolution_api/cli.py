"""`loopgate api ...`: serve the resolution API, migrate its database, manage bearer tokens."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from loopgate.common.logging import configure_logging
from loopgate.common.settings import get_settings
from loopgate.resolution_api.db import Database
from loopgate.resolution_api.domain_errors import NotFound
from loopgate.resolution_api.permissions import Role
from loopgate.resolution_api.tokens import TokenCache, Tokens

app = typer.Typer(help="The resolution API: serve, migrate, tokens.", no_args_is_help=True)
tokens_app = typer.Typer(help="Bearer tokens (stored only as SHA-256 hashes).", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: LOOPGATE_API_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Default: LOOPGATE_API_PORT")] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Run the API with uvicorn (one worker: the outbox relay and the sweeper run inside it)."""
    import uvicorn

    from loopgate.resolution_api.app import create_app

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn re-raises SIGTERM after its graceful shutdown, so the process would end
            # with -15; a clean shutdown exits 0, as the detector's and the dispatcher's do.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self.handle_exit)
            yield

    settings = get_settings()
    configure_logging(log_level)
    config = uvicorn.Config(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=1,
        log_level=log_level.lower(),
        log_config=None,
    )
    Server(config).run()


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await db.migrate()
    finally:
        await db.dispose()


@app.command()
def migrate() -> None:
    """Apply every database migration not applied yet (the API also does this when it starts)."""
    url = get_settings().database_url
    asyncio.run(_migrate(url))
    typer.echo(f"database at head: {_safe_url(url)}")


@contextlib.asynccontextmanager
async def _tokens(url: str) -> AsyncIterator[Tokens]:
    """tokens.py's service on a migrated database, for one command (no cache: one call each)."""
    db = Database(url)
    try:
        await db.migrate()
        yield Tokens(db=db, cache=TokenCache(ttl=0))
    finally:
        await db.dispose()


async def _create_token(url: str, name: str, role: Role) -> tuple[str, str]:
    async with _tokens(url) as tokens:
        row, secret = await tokens.create(name=name, role=role)
        return row.id, secret


@tokens_app.command("create")
def tokens_create(
    role: Annotated[Role, typer.Option(help="service (creates exceptions), operator, or admin")],
    name: Annotated[str, typer.Option(help="Who uses it: recorded as actor and resolver")],
) -> None:
    """Create a token and print it once on stdout (its id goes to stderr)."""
    token_id, secret = asyncio.run(_create_token(get_settings().database_url, name, role))
    typer.echo(f"created {role.value} token {token_id} for {name!r}; it is shown only now", err=True)
    typer.echo(secret)


async def _revoke_token(url: str, token_id: str) -> bool:
    async with _tokens(url) as tokens:
        try:
            await tokens.revoke(token_id)
        except NotFound:
            return False
        return True


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="The id shown by `tokens list`")]) -> None:
    """Revoke a token: it is refused from now on."""
    if not asyncio.run(_revoke_token(get_settings().database_url, token_id)):
        typer.echo(f"no token with id {token_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {token_id}")


async def _list_tokens(url: str) -> list[tuple[str, str, str, str, str]]:
    async with _tokens(url) as tokens:
        rows = await tokens.list()
    return [
        (
            r.id,
            r.role,
            r.name,
            r.created_at.isoformat(timespec="seconds"),
            r.revoked_at.isoformat(timespec="seconds") if r.revoked_at else "-",
        )
        for r in rows
    ]


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens: id, role, name, created, revoked (never the secrets)."""
    typer.echo("id\trole\tname\tcreated_at\trevoked_at")
    for line in asyncio.run(_list_tokens(get_settings().database_url)):
        typer.echo("\t".join(line))
