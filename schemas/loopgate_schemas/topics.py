"""Topic names fixed by the contract (docs/contract.md)."""

from typing import Final

BIDS: Final = "bid-management.events"
TRAFFICKING: Final = "trafficking.events"
CONTENT: Final = "content-pipeline.events"
EXCEPTIONS: Final = "exceptions"
OUTCOMES: Final = "exception-outcomes"
EVENTS_DLQ: Final = "events.dlq"

UPSTREAM: Final = (BIDS, TRAFFICKING, CONTENT)

# Headers every message in events.dlq and exceptions.dlq carries (contract); the detector and
# the dispatcher write them from here.
DLQ_HEADER_ERROR: Final = "error"
DLQ_HEADER_SOURCE_TOPIC: Final = "source-topic"
DLQ_HEADER_SOURCE_PARTITION: Final = "source-partition"
DLQ_HEADER_SOURCE_OFFSET: Final = "source-offset"
# events.dlq only: which of the rejection kinds the reason is.
DLQ_HEADER_ERROR_KIND: Final = "error-kind"
# exceptions.dlq only: the API's status code for the refused record.
DLQ_HEADER_API_STATUS: Final = "api-status"
