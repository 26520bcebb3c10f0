"""`loopgate api ...`: serve the resolution API, migrate its database, manage bearer tokens."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from loopgate.common import tracing
from loopgate.common.logging import configure_logging
from loopgate.common.settings import get_settings
from loopgate.resolution_api.access.permissions import Role
from loopgate.resolution_api.access.tokens import TOKEN_PREFIX, TokenCache, Tokens
from loopgate.resolution_api.clock import utcnow
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.privileges import BadRoleName, checked_role, grant_row_access
from loopgate.resolution_api.domain_errors import Conflict, InvalidRequest, NotFound

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
    configure_logging(log_level, settings.log_format)
    tracing.configure_tracing(settings, "api")
    config = uvicorn.Config(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=1,
        log_level=log_level.lower(),
        log_config=None,
    )
    Server(config).run()


async def _migrate(url: str, grant_to: str | None) -> bool:
    db = Database(url)
    try:
        await db.migrate()
        return grant_to is not None and await grant_row_access(db, grant_to)
    finally:
        await db.dispose()


@app.command()
def migrate(
    grant_to: Annotated[
        str | None,
        typer.Option(
            "--grant-to",
            help="After migrating, grant this PostgreSQL role the API's row access (read and write rows, no "
            "schema changes): the role the API connects as with LOOPGATE_DATABASE_MIGRATE_ON_START=false.",
        ),
    ] = None,
) -> None:
    """Apply every database migration not applied yet (the API also does this when it starts, unless
    LOOPGATE_DATABASE_MIGRATE_ON_START is false)."""
    url = get_settings().database_url
    if grant_to is not None:
        try:
            checked_role(grant_to)
        except BadRoleName as err:
            raise typer.BadParameter(
                str(err).removeprefix(f"--grant-to {grant_to!r}: "), param_hint="--grant-to"
            ) from None
    try:
        granted = asyncio.run(_migrate(url, grant_to))
    except BadRoleName as err:
        typer.echo(f"refused: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"database at head: {_safe_url(url)}")
    if granted:
        typer.echo(f"role {grant_to} may read and write rows (no schema changes)")
    elif grant_to is not None:
        typer.echo(f"--grant-to {grant_to}: SQLite has no roles, nothing granted")


@contextlib.asynccontextmanager
async def _tokens(url: str) -> AsyncIterator[Tokens]:
    """tokens.py's service on a migrated database, for one command (no cache: one call each)."""
    db = Database(url)
    try:
        await db.prepare(migrate=get_settings().database_migrate_on_start)
        yield Tokens(db=db, cache=TokenCache(ttl=0))
    finally:
        await db.dispose()


DURATION = re.compile(r"([1-9][0-9]{0,5})([mhd])")
DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str, option: str) -> dt.timedelta:
    """`30m`, `12h` or `90d`: the CLI's way to say how long; a clear error otherwise."""
    found = DURATION.fullmatch(text.strip())
    if found is None:
        raise typer.BadParameter(f"{text!r}: a whole number and m, h or d (e.g. 12h, 90d)", param_hint=option)
    duration = dt.timedelta(**{DURATION_UNITS[found.group(2)]: int(found.group(1))})
    if duration > dt.timedelta(days=3650):
        raise typer.BadParameter(f"{text!r}: at most ten years", param_hint=option)
    return duration


async def _create_token(
    url: str, name: str, role: Role, clients: list[str] | None, expires_in: dt.timedelta | None
) -> tuple[str, str]:
    async with _tokens(url) as tokens:
        expires_at = None if expires_in is None else utcnow() + expires_in
        row, secret = await tokens.create(name=name, role=role, actor="cli", clients=clients, expires_at=expires_at)
        return row.id, secret


@tokens_app.command("create")
def tokens_create(
    role: Annotated[
        Role,
        typer.Option(
            help="service (creates exceptions), operator, admin, reviewer (a client's fact-checkers: "
            "their reviewer queues only) or analyst (read, statistics, export)"
        ),
    ],
    name: Annotated[str, typer.Option(help="Who uses it: recorded as actor and resolver; unique among active tokens")],
    client: Annotated[
        list[str] | None,
        typer.Option(help="A client it may see (repeat for several); none: agency-wide. A reviewer must name one."),
    ] = None,
    expires_in: Annotated[str | None, typer.Option(help="It stops working after this long: 30m, 12h, 90d")] = None,
) -> None:
    """Create a token and print it once on stdout (what it is, and its id, go to stderr)."""
    lifetime = None if expires_in is None else parse_duration(expires_in, "--expires-in")
    try:
        token_id, secret = asyncio.run(_create_token(get_settings().database_url, name, role, client or None, lifetime))
    except (InvalidRequest, Conflict) as err:
        typer.echo(f"not created: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(token_created_message(role=role, name=name, token_id=token_id, terminal=sys.stdout.isatty()), err=True)
    typer.echo(secret)


async def _rotate_token(url: str, token_id: str, grace: dt.timedelta) -> str:
    async with _tokens(url) as tokens:
        _, secret = await tokens.rotate(token_id, grace=grace, actor="cli")
        return secret


@tokens_app.command("rotate")
def tokens_rotate(
    token_id: Annotated[str, typer.Argument(help="The id shown by `tokens list`")],
    grace: Annotated[str, typer.Option(help="How long the old secret keeps working: 30m, 12h, 7d")] = "1h",
) -> None:
    """A new secret for a token, printed once on stdout; the old one works for the grace period."""
    try:
        secret = asyncio.run(_rotate_token(get_settings().database_url, token_id, parse_duration(grace, "--grace")))
    except (NotFound, Conflict, InvalidRequest) as err:
        typer.echo(f"not rotated: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"rotated token id {token_id}; its new secret is on stdout, shown only once", err=True)
    typer.echo(secret)


def token_created_message(*, role: Role, name: str, token_id: str, terminal: bool) -> str:
    """The line beside a new token: its id is what `tokens revoke` takes, never the secret itself,
    which is the line on stdout (on a terminal, the line right below this one)."""
    where = "the line below" if terminal else "stdout"
    return (
        f"created {role.value} token for {name!r} (token id {token_id}, for `loopgate api tokens revoke`; "
        f"it is not the token). The token is on {where}, starting {TOKEN_PREFIX}: copy it now, it is shown only once."
    )


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


async def _list_tokens(url: str) -> list[tuple[str, ...]]:
    async with _tokens(url) as tokens:
        rows = await tokens.list()

    def when(t: dt.datetime | None) -> str:
        return t.isoformat(timespec="seconds") if t else "-"

    return [
        (
            r.id,
            r.role,
            r.name,
            when(r.created_at),
            when(r.revoked_at),
            ",".join(r.clients) if r.clients is not None else "*",
            when(r.expires_at),
            when(r.last_used_at),
        )
        for r in rows
    ]


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens: id, role, name, created, revoked, clients (* is agency-wide), expires, last used
    (never the secrets)."""
    typer.echo("id\trole\tname\tcreated_at\trevoked_at\tclients\texpires_at\tlast_used_at")
    for line in asyncio.run(_list_tokens(get_settings().database_url)):
        typer.echo("\t".join(line))
