"""The intake stores records a batch per transaction: a batch must answer each record exactly as
storing the records one by one, in the same order, would."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from pathlib import Path
from typing import Any

from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.exceptions.creation import CreateResult, Received, create_or_group
from loopgate.resolution_api.exceptions.intake import Intake
from loopgate_schemas.exceptions import ExceptionRecord
from tests.fixtures.api import record


def burst(seed: int) -> list[ExceptionRecord]:
    """An alert storm as the dispatcher delivers it: few fingerprints, redeliveries, records out of
    order in time."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 11, 24, 9, tzinfo=dt.UTC)
    sent: list[dict[str, Any]] = []
    for n in range(120):
        if sent and rng.random() < 0.2:
            sent.append(rng.choice(sent))  # redelivered
            continue
        sent.append(
            record(
                exception_id=f"rec-{seed}-{n}",
                fingerprint=f"bid_over_cap:li-{rng.randrange(6)}",
                occurrences=rng.randrange(1, 4),
                detected_at=(start + dt.timedelta(minutes=rng.randrange(60))).isoformat(),
            )
        )
    return [ExceptionRecord.model_validate(r) for r in sent]


async def stored(db: Database) -> dict[str, tuple[Any, ...]]:
    async with db.read() as session:
        rows = await store.list_exceptions(session=session, filters=store.ExceptionFilters(), after=None, limit=500)
        return {
            row.id: (
                row.fingerprint,
                row.occurrences,
                row.first_seen,
                row.last_seen,
                row.status,
                [(e.action, e.fields) for e in await store.history(session=session, exception_id=row.id)],
            )
            for row in rows
        }


async def fresh_db(path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    return db


async def test_one_batch_answers_and_stores_exactly_as_one_record_at_a_time(tmp_path: Path) -> None:
    records = burst(seed=7)
    batched, single = await fresh_db(tmp_path / "batched.db"), await fresh_db(tmp_path / "single.db")
    try:
        in_one = await create_or_group(db=batched, received=[Received(r, "dispatcher") for r in records])
        one_by_one = [(await create_or_group(db=single, received=[Received(r, "dispatcher")]))[0] for r in records]

        assert [(row.id, result) for row, result in in_one] == [(row.id, result) for row, result in one_by_one]
        results = {result for _, result in in_one}
        assert results == set(CreateResult)  # the storm had all three kinds of record
        assert await stored(batched) == await stored(single)
    finally:
        await batched.dispose()
        await single.dispose()


async def test_concurrent_submissions_share_transactions_and_each_gets_its_own_answer(tmp_path: Path) -> None:
    db = await fresh_db(tmp_path / "intake.db")
    intake = Intake(db=db)
    await intake.start()
    records = [ExceptionRecord.model_validate(record()) for _ in range(50)]
    try:
        answers = await asyncio.gather(*(intake.submit(r, "dispatcher") for r in records))
    finally:
        await intake.stop()
        await db.dispose()

    # One transaction for all 50: gather's 50 tasks each queue their record and wait, all in the
    # same pass of the event loop (nothing in submit awaits before the put); the writer, woken by
    # the first put, runs only in the next pass, and then takes the whole queue as one batch.
    assert intake.batches_written == 1
    assert [row.id for row, _ in answers] == [r.exception_id for r in records]
    assert {result for _, result in answers} == {CreateResult.CREATED}
