"""`loopgate ops`: the on-call operator's command line over the resolution API (HTTP, with the
operator's own token): list, show, claim, unclaim, resolve, escalate, snooze, silence, silences list|expire,
oncall, reopen (admins), whoami.

Where it finds the API and the token, first found wins: --url/--token; LOOPGATE_OPS_URL and
LOOPGATE_OPS_TOKEN; the config file (LOOPGATE_OPS_CONFIG, default ~/.config/loopgate/ops.toml,
keys `url` and `token`); the URL falls back to LOOPGATE_API_URL (the dispatcher's setting).

Exit codes (EXIT_CODES): 0 done; 1 the API refused the request (400, 422); 2 usage or
configuration (no token, a bad option); 3 not found; 4 conflict: changed by someone else or not
allowed in its current status (409, 412); 5 not signed in or not allowed (401, 403); 6 the API
could not be reached or failed (5xx)."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.table import Table

from loopgate.common.decisions import decisions_help
from loopgate.common.settings import get_settings
from loopgate.common.strict_toml import Strict, TomlError, load_toml

EXIT_CODES = {
    "ok": 0,
    "refused": 1,
    "usage": 2,
    "not_found": 3,
    "conflict": 4,
    "unauthorized": 5,
    "unavailable": 6,
}
DEFAULT_CONFIG = Path("~/.config/loopgate/ops.toml")


class OpsConfig(Strict):
    """The ops CLI's config file (LOOPGATE_OPS_CONFIG, default ~/.config/loopgate/ops.toml)."""

    url: str | None = None
    token: str | None = None


app = typer.Typer(
    help="Work exceptions from the command line (the resolution API, with your operator token). "
    "Exit codes: 0 done, 1 refused, 2 usage/config, 3 not found, 4 changed by someone else or not allowed now, "
    "5 not signed in or not allowed, 6 API unreachable or failing.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)

UrlOption = Annotated[str | None, typer.Option("--url", help="The API's base URL (else LOOPGATE_OPS_URL, config)")]
TokenOption = Annotated[str | None, typer.Option("--token", help="Your token (else LOOPGATE_OPS_TOKEN, config)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON, for scripts")]
IfVersion = Annotated[
    int | None, typer.Option("--if-version", help="Only if the exception is still at this version (its ETag)")
]


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    token: str


def fail(code: str, message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(EXIT_CODES[code])


def target(url: str | None, token: str | None) -> Target:
    """The API and token, from the options, the environment, the config file, then settings."""
    path = Path(os.environ.get("LOOPGATE_OPS_CONFIG") or DEFAULT_CONFIG).expanduser()
    config = OpsConfig()
    if path.is_file():  # optional: without one, the options and the environment say it all
        try:
            config = load_toml(path, OpsConfig)
        except TomlError as problem:
            fail("usage", str(problem))
    url = url or os.environ.get("LOOPGATE_OPS_URL") or config.url or get_settings().api_url
    token = token or os.environ.get("LOOPGATE_OPS_TOKEN") or config.token
    if not isinstance(token, str) or not token:
        fail("usage", f'no token: set LOOPGATE_OPS_TOKEN, pass --token, or put token = "..." in {path}')
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        fail("usage", f"the API URL must be http(s)://..., not {url!r}")
    return Target(url=url.rstrip("/"), token=token)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body)[:500]
    return str(body)[:500]


def checked(response: httpx.Response) -> Any:
    """The response's JSON, or exit with the code its status means."""
    code = response.status_code
    if code < 300:
        return response.json()
    detail = _detail(response)
    if code == 404:
        fail("not_found", detail)
    if code in (409, 412):
        prefix = "changed by someone else: " if code == 412 else "not allowed now: "
        fail("conflict", prefix + detail)
    if code in (401, 403):
        fail("unauthorized", f"{code}: {detail}")
    if code >= 500:
        fail("unavailable", f"the API failed ({code}): {detail}")
    fail("refused", f"{code}: {detail}")


@contextmanager
def client(where: Target) -> Iterator[httpx.Client]:
    try:
        with httpx.Client(base_url=where.url, headers={"Authorization": f"Bearer {where.token}"}, timeout=30.0) as http:
            yield http
    except httpx.HTTPError as problem:
        fail("unavailable", f"cannot reach {where.url}: {type(problem).__name__}: {problem}")


def _when(value: str | None) -> str:
    if not value:
        return ""
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC).strftime("%d %b %H:%M")


def _money(exc: dict[str, Any]) -> str:
    impact = exc.get("impact")
    return f"{impact['amount']:,.2f} {impact['currency']}" if impact else ""


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


@app.command("list")
def list_command(
    status: Annotated[list[str] | None, typer.Option("--status", help="Repeat for several; default unresolved")] = None,
    severity: Annotated[list[str] | None, typer.Option("--severity", help="Repeat for several")] = None,
    rule: Annotated[str | None, typer.Option("--rule")] = None,
    client_id: Annotated[str | None, typer.Option("--client")] = None,
    source: Annotated[str | None, typer.Option("--source")] = None,
    queue: Annotated[list[str] | None, typer.Option("--queue", help="Repeat for several")] = None,
    sort: Annotated[str, typer.Option("--sort", help="severity (then money at risk), impact or newest")] = "severity",
    limit: Annotated[int, typer.Option("--limit", min=1, max=200)] = 50,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """The queue: most severe and most money at risk first."""
    params: list[tuple[str, str | int | float | bool | None]] = [("sort", sort), ("limit", limit)]
    for name, values in (("status", status or ["open", "claimed", "escalated", "snoozed"]), ("severity", severity)):
        params += [(name, v) for v in values or ()]
    params += [("queue", q) for q in queue or ()]
    params += [
        (name, value) for name, value in (("rule_id", rule), ("client_id", client_id), ("source", source)) if value
    ]
    with client(target(url, token)) as http:
        page = checked(http.get("/v1/exceptions", params=params))
    if as_json:
        _print_json(page)
        return
    table = Table(
        title=f"{len(page['items'])} exception(s)" + (" (more: narrow the filter)" if page["next_cursor"] else "")
    )
    for column in ("id", "severity", "rule", "client", "at risk", "status", "seen", "summary"):
        table.add_column(
            column, overflow="fold", no_wrap=column == "id", justify="right" if column == "at risk" else "left"
        )
    for exc in page["items"]:
        table.add_row(
            exc["id"],
            exc["severity"],
            exc["rule_id"],
            exc.get("client_id") or "",
            _money(exc),
            exc["status"] + (f" ({exc['assignee']})" if exc.get("assignee") else ""),
            f"{exc['occurrences']}x {_when(exc['last_seen'])}",
            exc["summary"],
        )
    out.print(table)


@app.command("show")
def show_command(
    exception_id: str, as_json: JsonOption = False, url: UrlOption = None, token: TokenOption = None
) -> None:
    """One exception: its facts, observed values against the threshold, the event and its history."""
    with client(target(url, token)) as http:
        exc = checked(http.get(f"/v1/exceptions/{_path(exception_id)}"))
        history = checked(http.get(f"/v1/exceptions/{_path(exception_id)}/history"))
    if as_json:
        _print_json({**exc, "history": history["items"]})
        return
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column(overflow="fold")
    for name, value in (
        ("summary", exc["summary"]),
        ("severity", exc["severity"]),
        ("status", exc["status"] + (f" (assigned to {exc['assignee']})" if exc.get("assignee") else "")),
        ("rule", f"{exc['rule_id']} ({exc['kind']})"),
        ("client", exc.get("client_id") or ""),
        ("subject", exc["subject"]),
        ("observed", json.dumps(exc["observed"], ensure_ascii=False)),
        ("threshold", json.dumps(exc.get("threshold"), ensure_ascii=False)),
        ("at risk", _money(exc)),
        ("occurrences", f"{exc['occurrences']}, last seen {_when(exc['last_seen'])}"),
        ("version", str(exc["version"])),
        ("suggested", _suggestion(exc.get("suggestion"))),
    ):
        facts.add_row(name, value)
    out.print(facts)
    table = Table(title="history")
    for column in ("at", "actor", "action", "status", "fields"):
        table.add_column(column, overflow="fold")
    for event in history["items"]:
        moved = f"{event['from_status'] or ''} -> {event['to_status'] or ''}"
        table.add_row(_when(event["at"]), event["actor"], event["action"], moved, json.dumps(event["fields"]))
    out.print(table)


def _suggestion(suggestion: dict[str, Any] | None) -> str:
    """The suggested decision and its evidence (advice: it resolves nothing); empty once resolved."""
    if not suggestion:
        return ""
    if suggestion.get("decision") is None:
        return f"none: {suggestion['evidence']}"
    return f"{suggestion['decision']} ({suggestion['confidence']:.0%}): {suggestion['evidence']}"


def _path(exception_id: str) -> str:
    return quote(exception_id, safe="")


def _act(
    exception_id: str, action: str, body: dict[str, Any] | None, if_version: int | None, where: Target, as_json: bool
) -> None:
    headers = {"If-Match": f'"{if_version}"'} if if_version is not None else {}
    with client(where) as http:
        exc = checked(http.post(f"/v1/exceptions/{_path(exception_id)}/{action}", json=body, headers=headers))
    if as_json:
        _print_json(exc)
    else:
        who = f" ({exc['assignee']})" if exc.get("assignee") else ""
        out.print(f"{exc['id']}: {exc['status']}{who}, version {exc['version']}", highlight=False)


@app.command("claim")
def claim_command(
    exception_id: str,
    if_version: IfVersion = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Claim an exception for yourself."""
    _act(exception_id, "claim", None, if_version, target(url, token), as_json)


@app.command("unclaim")
def unclaim_command(
    exception_id: str,
    if_version: IfVersion = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Give a claimed exception back to the queue (open, nobody assigned): yours, or anyone's as an admin."""
    _act(exception_id, "unclaim", None, if_version, target(url, token), as_json)


def _value(text: str) -> Any:
    """A corrected value: JSON when it reads as JSON (numbers, lists, true), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@app.command("resolve")
def resolve_command(
    exception_id: str,
    decision: Annotated[str, typer.Option("--decision", help=decisions_help())],
    reason: Annotated[str, typer.Option("--reason")] = "",
    corrections: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="FIELD=VALUE, repeatable: a corrected field of the event's data (VALUE read as JSON when it is); "
            "its value before is read from the exception",
        ),
    ] = None,
    if_version: IfVersion = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Resolve for good with a decision; the outcome is published on exception-outcomes. The
    `escalated` decision closes it as handed outside Loopgate; to keep it open and ask for help,
    use `loopgate ops escalate`."""
    where = target(url, token)
    correction: dict[str, dict[str, Any]] = {}
    if corrections:
        with client(where) as http:
            exc = checked(http.get(f"/v1/exceptions/{_path(exception_id)}"))
        data = (exc.get("event") or {}).get("data") or {}
        for item in corrections:
            name, sep, text = item.partition("=")
            if not sep or not name:
                fail("usage", f"--set {item!r}: FIELD=VALUE")
            if name not in data:
                fail("usage", f"--set {name}: the event has no field {name!r} (fields: {', '.join(sorted(data))})")
            correction[name] = {"before": data[name], "after": _value(text)}
        if if_version is None:
            if_version = exc["version"]  # the values before were read at this version
    body = {"decision": decision, "reason": reason, "correction": correction}
    _act(exception_id, "resolve", body, if_version, where, as_json)


@app.command("escalate")
def escalate_command(
    exception_id: str,
    reason: Annotated[str, typer.Option("--reason")],
    if_version: IfVersion = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Escalate: keep it open (status escalated) and tell the escalation receivers, saying why.

    Not the `escalated` decision of `resolve`, which closes it as handed outside Loopgate."""
    _act(exception_id, "escalate", {"reason": reason}, if_version, target(url, token), as_json)


def _hours(text: str) -> dt.timedelta:
    units = {"m": 60, "h": 3600, "d": 86400}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        fail("usage", f"{text!r}: a duration like 30m, 4h or 2d")
    return dt.timedelta(seconds=int(text[:-1]) * units[text[-1]])


@app.command("snooze")
def snooze_command(
    exception_id: str,
    for_: Annotated[str, typer.Option("--for", help="How long: 30m, 4h, 2d")] = "4h",
    reason: Annotated[str, typer.Option("--reason")] = "",
    if_version: IfVersion = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Snooze an exception for a while (the SLA still runs)."""
    until = dt.datetime.now(dt.UTC) + _hours(for_)
    _act(
        exception_id, "snooze", {"until": until.isoformat(), "reason": reason}, if_version, target(url, token), as_json
    )


@app.command("silence")
def silence_command(
    rule: Annotated[str | None, typer.Option("--rule")] = None,
    client_id: Annotated[str | None, typer.Option("--client")] = None,
    source: Annotated[str | None, typer.Option("--source")] = None,
    severity: Annotated[str | None, typer.Option("--severity")] = None,
    like: Annotated[str | None, typer.Option("--like", help="An exception id: silence its rule for its client")] = None,
    for_: Annotated[str, typer.Option("--for", help="How long: 30m, 4h, 2d")] = "4h",
    comment: Annotated[str, typer.Option("--comment", help="Why (required by the API)")] = "",
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Silence matching exceptions for a while (e.g. --like EXC --for 4h: this rule for this client)."""
    where = target(url, token)
    if not comment:
        fail("usage", "--comment: say why (what the next operator reading the silence needs)")
    body: dict[str, Any] = {"rule_id": rule, "client_id": client_id, "source": source, "severity": severity}
    with client(where) as http:
        if like:
            exc = checked(http.get(f"/v1/exceptions/{_path(like)}"))
            body["rule_id"] = body["rule_id"] or exc["rule_id"]
            body["client_id"] = body["client_id"] or exc.get("client_id")
        body = {k: v for k, v in body.items() if v}
        if not body:
            fail("usage", "give what to silence: --like EXC, or --rule/--client/--source/--severity")
        body["ends_at"] = (dt.datetime.now(dt.UTC) + _hours(for_)).isoformat()
        body["comment"] = comment
        silence = checked(http.post("/v1/silences", json=body))
    if as_json:
        _print_json(silence)
        return
    matched = ", ".join(f"{k}={silence[k]}" for k in ("rule_id", "client_id", "source", "severity") if silence.get(k))
    out.print(
        f"silence {silence['id']}: {matched} until {_when(silence['ends_at'])} UTC, holding {silence['silenced']}",
        highlight=False,
    )


silences_app = typer.Typer(help="The silences in force: list them, end one early.", no_args_is_help=True)
app.add_typer(silences_app, name="silences")


@silences_app.command("list")
def silences_list_command(
    expired: Annotated[bool, typer.Option("--expired", help="Those that ended instead, most recent first")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 100,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Active and pending silences, those ending soonest first (--expired: the ended ones)."""
    params: dict[str, Any] = {"limit": limit, "state": ["expired"] if expired else ["active", "pending"]}
    with client(target(url, token)) as http:
        page = checked(http.get("/v1/silences", params=params))
    if as_json:
        _print_json(page)
        return
    table = Table("id", "matches", "state", "ends (UTC)", "holds", "by", "comment", box=None)
    for s in page["items"]:
        matches = "everything" if s["match_all"] else _matchers(s)
        state = f"{s['state']} (ending soon)" if s["expiring_soon"] else s["state"]
        table.add_row(s["id"], matches, state, _when(s["ends_at"]), str(s["silenced"]), s["created_by"], s["comment"])
    out.print(table)


def _matchers(silence: dict[str, Any]) -> str:
    keys = ("rule_id", "client_id", "subject", "source", "severity")
    return ", ".join(f"{k}={silence[k]}" for k in keys if silence.get(k))


@silences_app.command("expire")
def silences_expire_command(
    silence_id: str, as_json: JsonOption = False, url: UrlOption = None, token: TokenOption = None
) -> None:
    """End a silence now: what it held is back in the queue if unresolved."""
    with client(target(url, token)) as http:
        silence = checked(http.post(f"/v1/silences/{_path(silence_id)}/expire"))
    if as_json:
        _print_json(silence)
        return
    out.print(f"silence {silence['id']}: expired by {silence['expired_by']}", highlight=False)


@app.command("reopen")
def reopen_command(
    exception_id: str,
    reason: Annotated[str, typer.Option("--reason", help="Why it is opened again (an admin's command)")],
    if_version: IfVersion = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Reopen a resolved exception (admins only); its outcome stays on exception-outcomes."""
    _act(exception_id, "reopen", {"reason": reason}, if_version, target(url, token), as_json)


@app.command("oncall")
def oncall_command(
    at: Annotated[str | None, typer.Option("--at", help="Another moment than now (RFC 3339 with its offset)")] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Who is on call now in every schedule, until when, and how to reach them."""
    with client(target(url, token)) as http:
        page = checked(http.get("/v1/oncall", params={"at": at} if at else None))
    if as_json:
        _print_json(page)
        return
    table = Table("schedule", "on call", "from", "until (UTC)", "channels", box=None)
    for entry in page["items"]:
        who = entry["person"] or "nobody"
        if entry["name"]:
            who = f"{who} ({entry['name']})"
        source = entry["layer"] or entry["source"]
        channels = ", ".join(f"{c['kind']}: {c['address']}" for c in entry["channels"])
        table.add_row(entry["schedule"], who, source, _when(entry["until"]), channels)
    out.print(table)
    if not page["items"]:
        out.print("no schedules (LOOPGATE_SCHEDULES_FILE is not set)", highlight=False)


@app.command("whoami")
def whoami_command(as_json: JsonOption = False, url: UrlOption = None, token: TokenOption = None) -> None:
    """Who your token is, its role and what it may see."""
    with client(target(url, token)) as http:
        me = checked(http.get("/v1/whoami"))
    if as_json:
        _print_json(me)
        return
    expires = f", expires {_when(me['expires_at'])} UTC" if me.get("expires_at") else ""
    out.print(f"{me['name']}: {me['role']}, sees {me['scope']}{expires}", highlight=False)
