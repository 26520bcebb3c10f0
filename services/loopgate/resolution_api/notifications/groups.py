"""Grouped notifications, the database side (grouping.py decides): an opening in a queue with
`group_by` joins its group for each receiver instead of being sent alone; `flush_groups`, in the
relay's fan-out pass, writes one message per group that is due, listing the exceptions that joined
since its last message, and marks them in the same transaction. The message is an ordinary
notification with a stable id (the group, its message number, the receiver), so the relay sends it
as it sends the others: once per (group message, receiver), through restarts.

Alertmanager receivers are never grouped here: Alertmanager groups alerts itself, and each alert
must resolve on its own. A group with nothing new whose listed exceptions are not all resolved
is told again every `repeat_interval` after its last message: one message listing those still
firing (Alertmanager's repeat), numbered as the others, so it too is written once per (group
message, receiver) whatever restarts. Inhibition (inhibition.py) holds an opening back before it joins."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.resolution_api.db.models import ExceptionRow, NotificationGroupMemberRow, NotificationGroupRow
from loopgate.resolution_api.exceptions.lifecycle import Status
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
    return written + await _repeat_firing(
        session=session, config=config, public_url=public_url, now=now, skip={(r, k) for r, k, _, _ in waiting}
    )


async def _repeat_firing(
    *, session: AsyncSession, config: NotificationsConfig, public_url: str, now: dt.datetime, skip: set[tuple[str, str]]
) -> int:
    """Tell again the groups with nothing new whose listed exceptions still fire, once
    repeat_interval has passed since their last message; how many messages."""
    member, group = NotificationGroupMemberRow, NotificationGroupRow
    shortest = min((q.grouping.repeat_interval for q in config.queues.values() if q.grouping is not None), default=None)
    if shortest is None:
        return 0
    firing = (
        await session.execute(
            sa.select(group, member.queue)
            .join(member, sa.and_(member.receiver == group.receiver, member.group_key == group.group_key))
            .join(ExceptionRow, ExceptionRow.id == member.exception_id)
            .where(
                group.last_message_at <= now - dt.timedelta(seconds=shortest),  # none due sooner: not read
                member.message_id.is_not(None),
                ExceptionRow.status != Status.RESOLVED.value,
            )
            .group_by(group.receiver, group.group_key, group.messages, group.last_message_at, member.queue)
        )
    ).all()
    written = 0
    for row, queue in firing:
        grouping = config.queue(queue).grouping
        if (row.receiver, row.group_key) in skip or grouping is None or row.receiver not in config.receivers:
            continue
        last = row.last_message_at if row.last_message_at.tzinfo else row.last_message_at.replace(tzinfo=dt.UTC)
        due = next_message(grouping, GroupState(last, last, new_since_message=False, firing=True))
        if due is None or due > now:
            continue
        skip.add((row.receiver, row.group_key))  # one message even if its members span two queue names
        await _write_message(session, config, row.receiver, row.group_key, row, public_url, now, repeat=True)
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
    *,
    repeat: bool = False,
) -> None:
    """The group's next message: the members no message listed yet, or (`repeat`) those listed
    before that still fire, which keep the message that first listed them."""
    stmt = sa.select(NotificationGroupMemberRow).where(
        NotificationGroupMemberRow.receiver == receiver, NotificationGroupMemberRow.group_key == key
    )
    if repeat:
        stmt = stmt.join(ExceptionRow, ExceptionRow.id == NotificationGroupMemberRow.exception_id).where(
            NotificationGroupMemberRow.message_id.is_not(None), ExceptionRow.status != Status.RESOLVED.value
        )
    else:
        stmt = stmt.where(NotificationGroupMemberRow.message_id.is_(None))
    members = list((await session.execute(stmt.order_by(NotificationGroupMemberRow.id))).scalars())
    if not members:
        return
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
    payload = render_group(
        json.loads(key), listed, kind=kind, message_id=message_id, public_url=public_url, at=now, repeat=repeat
    )
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
    if not repeat:
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
    labels: dict[str, str],
    rows: list[ExceptionRow],
    *,
    kind: str,
    message_id: str,
    public_url: str,
    at: dt.datetime,
    repeat: bool = False,
) -> str:
    """One message listing the group's new exceptions (`repeat`: those still firing): a CloudEvent
    for a webhook, a chat message for Slack (the first LISTED_IN_CHAT, then how many more)."""
    if kind == "slack":
        group = ", ".join(f"{slack_text(k)}={slack_text(v or '-')}" for k, v in sorted(labels.items()))
        plural = "" if len(rows) == 1 else "s"
        head = f"still firing: {len(rows)} exception{plural}" if repeat else f"{len(rows)} new exception{plural}"
        lines = [f"{head} ({group})"]
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
                "repeat": repeat,
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
