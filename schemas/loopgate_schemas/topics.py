"""Topic names fixed by the contract (docs/contract.md)."""

from typing import Final

BIDS: Final = "bid-management.events"
TRAFFICKING: Final = "trafficking.events"
CONTENT: Final = "content-pipeline.events"
EXCEPTIONS: Final = "exceptions"
OUTCOMES: Final = "exception-outcomes"
EVENTS_DLQ: Final = "events.dlq"

UPSTREAM: Final = (BIDS, TRAFFICKING, CONTENT)

# Headers every message in events.dlq carries (contract).
DLQ_HEADER_ERROR: Final = "error"
DLQ_HEADER_SOURCE_TOPIC: Final = "source-topic"
DLQ_HEADER_SOURCE_PARTITION: Final = "source-partition"
DLQ_HEADER_SOURCE_OFFSET: Final = "source-offset"
