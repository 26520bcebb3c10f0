"""Grouped notifications, the database side (grouping.py decides): an opening in a queue with
`group_by` joins its group for each receiver instead of being sent alone; `flush_groups`, in the
relay's fan-out pass, writes one message per group that is due, listing the exceptions that joined
since its last message, and marks them in the same transaction. The message is an ordinary
notification with a stable id (the group, its message number, the receiver), so the relay sends it
as it sends the others: once per (group message, receiver), through restarts.

Alertmanager receivers are never grouped here: Alertmanager groups alerts itself, and each alert
must resolve on its own. Not done yet: repeat_interval (a firing group told again) is decided in
grouping.py but not applied. Inhibition (inhibition.py) holds an opening back before it joins."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.resolution_api.db.models import ExceptionRow, NotificationGroupMemberRow, NotificationGroupRow
from loopgate.resolution_api.notifications import store
from loopgate.resolution_api.notifications.config import NotificationsConfig
from loopgate.resolution_api.notifications.grouping import GroupState, group_key, next_message
from loopgate.resolution_api.notifications.payloads import exception_url, queue_of, slack_link, slack_text
from loopgate_schemas.notifications import notification_id_for

GROUPED_EVENT = "grouped"
GROUP_MESSAGE_TYPE = "loopgate.exceptions.grouped"
LISTED_IN_CHAT = 20  # a chat message names this many exceptions, then says how many more


def labels_of(row: ExceptionRow) -> dict[str, str]:
    """The labels group_by and inhibit rules read."""
    return {
        "rule": row.rule_id,
        "client": row.client_id or "",
        "source": row.source or "",
        "severity": row.severity,
        "kind": row.kind or "",
        "queue": queue_of(row),
        "subject": row.subject or "",
    }


async def join(
    *, session: AsyncSession, config: NotificationsConfig, row: ExceptionRow, receiver: str, now: dt.datetime
) -> bool:
    """Put the opened exception in its group for `receiver` when its queue groups (and the receiver
    is not an Alertmanager); False: send it alone as before."""
    grouping = config.queue(queue_of(row)).grouping
    if grouping is None or config.receivers[receiver].kind == "alertmanager":
        return False
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(NotificationGroupMemberRow).on_conflict_do_nothing(),
        [
            {
                "receiver": receiver,
                "group_key": group_key(grouping, labels_of(row)),
                "queue": queue_of(row),
                "exception_id": row.id,
                "joined_at": now,
                "message_id": None,
            }
        ],
    )
    return True


async def flush_groups(*, session: AsyncSession, config: NotificationsConfig, public_url: str, now: dt.datetime) -> int:
    """Write the message of every group that is due; how many messages."""
    waiting = (
        await session.execute(
            sa.select(
                NotificationGroupMemberRow.receiver,
                NotificationGroupMemberRow.group_key,
                NotificationGroupMemberRow.queue,
                sa.func.min(NotificationGroupMemberRow.joined_at),
            )
            .where(NotificationGroupMemberRow.message_id.is_(None))
            .group_by(
                NotificationGroupMemberRow.receiver,
                NotificationGroupMemberRow.group_key,
                NotificationGroupMemberRow.queue,
            )
        )
    ).all()
    written = 0
    for receiver, key, queue, first_joined in waiting:
        grouping = config.queue(queue).grouping
        if grouping is None or receiver not in config.receivers:
            continue  # the file changed: left for when it groups again (or set aside with the receiver)
        group = await session.get(NotificationGroupRow, (receiver, key))
        joined = first_joined if first_joined.tzinfo else first_joined.replace(tzinfo=dt.UTC)
        state = GroupState(joined, group.last_message_at if group else None, new_since_message=True, firing=True)
        due = next_message(grouping, state)
        if due is None or due > now:
            continue
        await _write_message(session, config, receiver, key, group, public_url, now)
        written += 1
    return written


async def _write_message(
    session: AsyncSession,
    config: NotificationsConfig,
    receiver: str,
    key: str,
    group: NotificationGroupRow | None,
    public_url: str,
    now: dt.datetime,
) -> None:
    members = list(
        (
            await session.execute(
                sa.select(NotificationGroupMemberRow)
                .where(
                    NotificationGroupMemberRow.receiver == receiver,
                    NotificationGroupMemberRow.group_key == key,
                    NotificationGroupMemberRow.message_id.is_(None),
                )
                .order_by(NotificationGroupMemberRow.id)
            )
        ).scalars()
    )
    rows = {
        r.id: r
        for r in (
            await session.execute(sa.select(ExceptionRow).where(ExceptionRow.id.in_([m.exception_id for m in members])))
        ).scalars()
    }
    listed = [rows[m.exception_id] for m in members if m.exception_id in rows]
    number = (group.messages if group else 0) + 1
    message_id = notification_id_for(key, f"group:{number}", receiver)
    kind = config.receivers[receiver].kind
    payload = render_group(json.loads(key), listed, kind=kind, message_id=message_id, public_url=public_url, at=now)
    await store.add_notifications(
        session=session,
        rows=[
            {
                "notification_id": message_id,
                "exception_id": listed[0].id if listed else members[0].exception_id,
                "event": GROUPED_EVENT,
                "level": None,
                "receiver": receiver,
                "receiver_kind": kind,
                "fingerprint": f"group:{key}"[:512],
                "payload": payload,
                "created_at": now,
            }
        ],
    )
    await session.execute(
        sa.update(NotificationGroupMemberRow)
        .where(NotificationGroupMemberRow.id.in_([m.id for m in members]))
        .values(message_id=message_id)
    )
    if group is None:
        session.add(NotificationGroupRow(receiver=receiver, group_key=key, messages=1, last_message_at=now))
    else:
        group.messages, group.last_message_at = number, now
    await session.flush()


def render_group(
    labels: dict[str, str], rows: list[ExceptionRow], *, kind: str, message_id: str, public_url: str, at: dt.datetime
) -> str:
    """One message listing the group's new exceptions: a CloudEvent for a webhook, a chat message
    for Slack (the first LISTED_IN_CHAT, then how many more)."""
    if kind == "slack":
        group = ", ".join(f"{slack_text(k)}={slack_text(v or '-')}" for k, v in sorted(labels.items()))
        lines = [f"{len(rows)} new exception{'' if len(rows) == 1 else 's'} ({group})"]
        for row in rows[:LISTED_IN_CHAT]:
            url = exception_url(public_url, row.id)
            lines.append(
                f"[{slack_text(row.severity.upper())}] {slack_text(row.rule_id)}: {slack_text(row.summary, 200)} "
                f"{slack_link(url, 'open')}"
            )
        if len(rows) > LISTED_IN_CHAT:
            lines.append(f"... and {len(rows) - LISTED_IN_CHAT} more")
        body: Any = {"text": "\n".join(lines)}
    else:
        body = {
            "specversion": "1.0",
            "id": message_id,
            "type": GROUP_MESSAGE_TYPE,
            "source": "loopgate/resolution-api",
            "time": at.isoformat(),
            "datacontenttype": "application/json",
            "data": {
                "group": labels,
                "exceptions": [
                    {
                        "exception_id": row.id,
                        "url": exception_url(public_url, row.id),
                        "rule_id": row.rule_id,
                        "severity": row.severity,
                        "client_id": row.client_id,
                        "summary": row.summary,
                        "first_seen": row.first_seen.isoformat(),
                    }
                    for row in rows
                ],
            },
        }
    return json.dumps(body, separators=(",", ":"))
