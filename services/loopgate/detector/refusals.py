"""Which produce errors are about the record itself (retrying it can never succeed: it is the
message's alone) rather than about the broker (the batch is retried until it passes)."""

from __future__ import annotations

from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)

RECORD_ERRORS = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
    UnsupportedForMessageFormatError,
)


def record_error(err: BaseException | None) -> bool:
    """Whether a produce error is the record's own (faust wraps aiokafka's errors in its own)."""
    while err is not None:
        if isinstance(err, RECORD_ERRORS):
            return True
        err = err.__cause__
    return False
