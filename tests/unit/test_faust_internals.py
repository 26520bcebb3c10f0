"""What the detector relies on of faust-streaming's internals is still there and still behaves
as it did when the batch path was written (detector/batching.py keeps all of it in one place).

faust-streaming and aiokafka are pinned to exact versions (pyproject.toml). An upgrade that
changes any function below fails here, loudly, naming what to re-read; the batch path's own
bookkeeping (one tracked message per batch, every offset acked at once) is checked against
faust's real commit computation."""

from __future__ import annotations

import hashlib
import inspect
import re
import tomllib
from collections import defaultdict
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from weakref import WeakSet

import pytest
from aiokafka.structs import ConsumerRecord
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from faust.types.tuples import ack_lock
from intervaltree import IntervalTree

from loopgate.detector.batching import BatchingConsumer, bounded

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
Consumer = faust_consumer.Consumer

# Each faust function the batch path mirrors or calls, with what to re-check when it changes.
# The fingerprint is the SHA-256 of its source (first 16 hex digits) in faust-streaming 0.15.3.
RELIED_ON: list[tuple[str, Callable[..., Any], str, str]] = [
    ("Consumer.ack", Consumer.ack, "5fcf41cf45153475", "BatchingConsumer._ack does what it does for a whole batch"),
    (
        "Consumer._new_offset",
        Consumer._new_offset,
        "1d2c7ea89a7ad4f1",
        "the commit is computed from _acked/_acked_index/_gap as _ack fills them; BatchingConsumer times it",
    ),
    (
        "Consumer.track_message",
        Consumer.track_message,
        "217d7f1399a4cd8e",
        "BatchingConsumer._track adds one message per batch to _unacked_messages instead",
    ),
    (
        "Consumer.wait_empty",
        Consumer.wait_empty,
        "e4662fe24f094819",
        "a revocation waits for _unacked_messages to empty: the batch token must be in it",
    ),
    (
        "Consumer._wait_next_records",
        Consumer._wait_next_records,
        "6218e1969a636b3f",
        "BatchingConsumer._drain_messages takes fetched records from it directly",
    ),
    (
        "Consumer._drain_messages",
        Consumer._drain_messages,
        "44a2500309e83c63",
        "BatchingConsumer._drain_messages replaces it: compare the two",
    ),
    (
        "aiokafka Consumer._to_message",
        aiokafka_driver.Consumer._to_message,
        "7c24f6511b2fcef7",
        "BatchingConsumer._track builds its batch token with it",
    ),
    (
        "aiokafka Producer._ensure_producer",
        aiokafka_driver.Producer._ensure_producer,
        "5592a4bbdf251325",
        "batching.aiokafka_producer reaches aiokafka's producer through it (send_batch)",
    ),
]


def pinned(name: str) -> str:
    for requirement in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]:
        match = re.fullmatch(rf"{re.escape(name)}==([\w.]+)", requirement.split(";")[0].strip())
        if match:
            return match.group(1)
    raise AssertionError(f"{name} is not pinned to an exact version in pyproject.toml")


@pytest.mark.parametrize("distribution", ["faust-streaming", "aiokafka"])
def test_faust_and_aiokafka_are_the_exact_versions_the_batch_path_was_checked_against(distribution: str) -> None:
    assert version(distribution) == pinned(distribution)


@pytest.mark.parametrize(("name", "function", "fingerprint", "what"), RELIED_ON, ids=[r[0] for r in RELIED_ON])
def test_a_faust_function_the_batch_path_relies_on_is_unchanged(
    name: str, function: Callable[..., Any], fingerprint: str, what: str
) -> None:
    source = inspect.getsource(function)
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == fingerprint, (
        f"faust-streaming's {name} changed: {what} (detector/batching.py); re-read it, then update the fingerprint"
    )


def test_the_consumer_state_the_batch_path_uses_is_still_kept_by_faust() -> None:
    init = inspect.getsource(Consumer.__init__)
    for attribute in ("_acked", "_acked_index", "_committed_offset", "_gap", "_unacked_messages", "_read_offset"):
        assert f"self.{attribute} = " in init, f"faust's Consumer no longer sets {attribute}"
    assert "self._n_acked" in inspect.getsource(Consumer.ack)
    assert "_waiting_for_ack" in inspect.getsource(Consumer._wait_for_ack)
    assert hasattr(ack_lock, "acquire")


# --- the batch ack, against faust's own commit computation -------------------------------------


def record(topic: str, partition: int, offset: int, value: bytes = b"{}") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value),
        headers=(),
    )


class Token:
    """Stands for faust's message: all _ack touches is `acked` (and the set it is in)."""

    acked = False


def consumer_state(committed: dict[TP, int] | None = None) -> SimpleNamespace:
    """The part of faust's Consumer that _ack and faust's _new_offset read and write."""
    state = SimpleNamespace(
        _committed_offset=defaultdict(lambda: None, committed or {}),
        _acked=defaultdict(list),
        _acked_index=defaultdict(set),
        _gap=defaultdict(IntervalTree),
        _n_acked=0,
        _unacked_messages=WeakSet(),
        _waiting_for_ack=None,
    )
    return state


def ack(state: SimpleNamespace, chunk: list[ConsumerRecord[bytes, bytes]], handled: dict[Any, int]) -> Token:
    token = Token()
    state._unacked_messages.add(token)
    BatchingConsumer._ack(state, chunk, token, handled)  # type: ignore[arg-type]
    return token


def commit_offset(state: SimpleNamespace, tp: TP) -> int | None:
    return Consumer._new_offset(state, tp)  # type: ignore[arg-type]  # faust's own computation


TP0, TP1 = TP("bids", 0), TP("bids", 1)


def test_a_batch_acked_at_once_lets_faust_commit_past_its_last_record_and_releases_the_revocation() -> None:
    state, handled = consumer_state(), {}
    token = ack(state, [record("bids", 0, o) for o in range(10)] + [record("bids", 1, 5)], handled)
    assert token.acked and not state._unacked_messages  # a revocation waits no more
    assert commit_offset(state, TP0) == 10 and commit_offset(state, TP1) == 6
    assert handled == {TP0: 9, TP1: 5}
    assert state._n_acked == 11


def test_offsets_without_records_between_batches_are_acked_so_the_commit_does_not_stop_at_them() -> None:
    # 10..11 handled, then 12 and 13 hold no record (transaction markers, compaction), then 14..15.
    state, handled = consumer_state(), {}
    ack(state, [record("bids", 0, 10), record("bids", 0, 11)], handled)
    assert commit_offset(state, TP0) == 12
    ack(state, [record("bids", 0, 14), record("bids", 0, 16)], handled)  # 15 is a gap within the batch
    assert commit_offset(state, TP0) == 17


def test_the_first_batch_after_assignment_acks_from_the_committed_offset() -> None:
    state, handled = consumer_state({TP0: 100}), {}
    ack(state, [record("bids", 0, 102), record("bids", 0, 103)], handled)  # 100 and 101 are markers
    assert commit_offset(state, TP0) == 104


def test_records_below_the_committed_offset_and_offsets_acked_already_are_not_acked_again() -> None:
    state, handled = consumer_state({TP0: 5}), {}
    ack(state, [record("bids", 0, o) for o in range(3, 8)], handled)
    assert sorted(state._acked[TP0]) == [5, 6, 7]
    ack(state, [record("bids", 0, 7), record("bids", 0, 8)], {TP0: 6})  # 7 again: acked once
    assert sorted(state._acked[TP0]) == [5, 6, 7, 8] and state._n_acked == 4
    assert commit_offset(state, TP0) == 9


# --- bounded batches ---------------------------------------------------------------------------


def test_a_fetch_is_cut_in_order_into_batches_bounded_by_records_and_bytes() -> None:
    fetched = [record("bids", i % 3, i, b"x" * 99) for i in range(25)]  # 100 bytes each with the key
    by_count = bounded(fetched, 10, 1 << 20)
    assert [len(p) for p in by_count] == [10, 10, 5]
    by_bytes = bounded(fetched, 1000, 450)
    assert [len(p) for p in by_bytes] == [4, 4, 4, 4, 4, 4, 1]
    assert [r for p in by_bytes for r in p] == fetched  # nothing lost, nothing reordered


def test_a_record_larger_than_the_byte_bound_is_a_batch_of_its_own() -> None:
    small, large = record("bids", 0, 1, b"s"), record("bids", 0, 2, b"L" * 5000)
    assert bounded([small, large, small], 100, 1000) == [[small], [large], [small]]
