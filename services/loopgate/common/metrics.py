"""Every Prometheus metric Loopgate exports, in one place (prometheus-client).

Names follow `loopgate_<thing>_<unit>[_total]`; label values are bounded (topic, type, rule,
severity, kind, reason kind, status), never an id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from loopgate_schemas.exceptions import RULE_IDS

# A `rule` label takes the detector's rule ids only: a record may carry any rule_id (the API takes
# records from anyone with a service token), and each new value would be a new series for good.
OTHER_RULE = "other"


def rule_label(rule_id: str) -> str:
    """The `rule` label value of `rule_id`: itself for a rule the detector has, else `other`."""
    return rule_id if rule_id in RULE_IDS else OTHER_RULE


# --- detector ---
EVENTS_CONSUMED = Counter(
    "loopgate_events_consumed_total", "Upstream messages read, by topic and event type", ["topic", "type"]
)
EVENTS_PROCESSED = Counter(
    "loopgate_events_processed_total", "Valid upstream events fully processed, by topic", ["topic"]
)
EXCEPTIONS_RAISED = Counter(
    "loopgate_exceptions_raised_total",
    "Exception records published by the detector",
    ["rule", "severity", "kind"],
)
AUDIT_SAMPLES = Counter("loopgate_audit_samples_total", "Events sampled for audit, by source", ["source"])
AUDIT_BASE_RATE = Gauge(
    "loopgate_audit_base_rate",
    "Audit base rate the verdicts call for, by source (model=any) and model (beyond the labelled ones: other)",
    ["source", "model"],
)
OUTCOMES_FOLDED = Counter(
    "loopgate_detector_outcomes_read_total", "Outcomes the detector read for its audit rates, by result", ["result"]
)
OUTCOME_READER_ERRORS = Counter(
    "loopgate_detector_outcome_reader_errors_total", "Times the detector's outcome reader failed and started again"
)
DLQ_MESSAGES = Counter(
    "loopgate_dlq_messages_total", "Messages sent to events.dlq, by source topic and reason", ["topic", "reason"]
)
CONSUMER_LAG = Gauge(
    "loopgate_consumer_lag_messages",
    "Records on the broker this worker has not read yet, over its assigned partitions (the consumer's "
    "high watermark minus the next offset, at its latest fetch), by consumer (detector, dispatcher) and topic",
    ["consumer", "topic"],
)
ASSIGNED_PARTITIONS = Gauge(
    "loopgate_detector_assigned_partitions", "Upstream partitions this worker owns since the last rebalance"
)

DETECTOR_FAILURES = Counter(
    "loopgate_detector_failures_total",
    "Messages the detector could not handle as usual, by topic and stage (internal_error, serialize_error, "
    "produce_error, dlq_truncated, changelog_error); each one alone, the stream went on",
    ["topic", "stage"],
)
DETECTOR_STAGE_CPU = Counter(
    "loopgate_detector_stage_cpu_seconds",
    "CPU time of the detector's event-loop thread per stage of its batches (validate, rules, baselines, sampling, "
    "records, produce, commit); fetching, faust and the event loop are the rest of the process's CPU time",
    ["stage"],
)
DETECTOR_BATCH_RECORDS = Histogram(
    "loopgate_detector_batch_records",
    "Upstream records per batch the detector handled (bounded by LOOPGATE_DETECTOR_BATCH_MAX_RECORDS)",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10_000, 50_000),
)
BASELINES_DISCARDED = Counter(
    "loopgate_baselines_discarded_total", "Unreadable stored baselines discarded and started afresh", ["topic"]
)
RECORDS_TRIMMED = Counter(
    "loopgate_records_trimmed_total", "Exception records whose copied event was cut to fit the budget", ["topic"]
)

# --- dispatcher ---
EXCEPTIONS_DELIVERED = Counter(
    "loopgate_exceptions_delivered_total", "Exceptions accepted by the resolution API", ["status"]
)
EXCEPTIONS_DELIVERY_FAILED = Counter(
    "loopgate_exceptions_delivery_failed_total",
    "Delivery attempts that failed, by reason (retried unless reason is 'rejected'; "
    "'misconfigured': a wrong token or API URL, see loopgate_dispatcher_misconfigured)",
    ["reason"],
)
DISPATCHER_MISCONFIGURED = Gauge(
    "loopgate_dispatcher_misconfigured",
    "1 while the dispatcher holds every record because it cannot deliver (wrong or missing token, wrong "
    "API URL, nothing listening, TLS), for the cause in reason; 0 otherwise",
    ["reason"],
)
DELIVERY_SECONDS = Histogram(
    "loopgate_delivery_seconds",
    "Time from reading an exception to its acceptance by the API",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# --- resolution API ---
OPEN_EXCEPTIONS = Gauge(
    "loopgate_open_exceptions", "Exceptions not yet resolved, by severity and status", ["severity", "status"]
)
EXCEPTIONS_CREATED = Counter(
    "loopgate_api_exceptions_received_total",
    "Exception records received, by result (created, grouped, duplicate)",
    ["result"],
)
RESOLUTIONS = Counter(
    "loopgate_resolutions_total",
    "Final resolutions, by decision and rule (a rule the detector does not have: other)",
    ["decision", "rule"],
)
TIME_TO_RESOLVE = Histogram(
    "loopgate_time_to_resolve_seconds",
    "From an exception's first detection to its final resolution",
    ["severity"],
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200, 604800),
)
RULE_TIME_TO_RESOLVE = Histogram(
    "loopgate_rule_time_to_resolve_seconds",
    "From an exception's first detection to its final resolution, by rule (verdict statistics; a rule the "
    "detector does not have: other)",
    ["rule"],
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200, 604800),
)
ROUTING_FALLBACKS = Counter(
    "loopgate_api_routing_fallbacks_total",
    "New exceptions a matching templated route could not take, by reason (missing_field: the record lacks the "
    "field the queue template names; invalid_queue: its value makes no valid queue name); each went to the next "
    "matching route or the default queue, with a note in its history",
    ["reason"],
)
OUTCOMES_PUBLISHED = Counter("loopgate_outcomes_published_total", "Outcome CloudEvents published to Kafka")
PRUNED_ROWS = Counter(
    "loopgate_api_pruned_rows_total",
    "Rows the retention job deleted, by table (exceptions, exception_events, occurrences, outbox)",
    ["table"],
)
RETENTION_SET_ASIDE = Counter(
    "loopgate_api_retention_set_aside_total",
    "Exceptions the retention job could not delete, by error class (kept and logged; tried again next pass)",
    ["reason"],
)
OUTBOX_PENDING = Gauge("loopgate_outbox_pending", "Outcomes committed but not yet published")
OUTBOX_OLDEST_PENDING = Gauge(
    "loopgate_outbox_oldest_pending_timestamp_seconds",
    "When the oldest outcome still waiting to be published was committed (Unix time); 0 when none waits",
)
EXCEPTION_TRANSITIONS = Counter(
    "loopgate_exception_transitions_total", "State changes of exceptions, by action", ["action"]
)
EVENT_HANDLER_ERRORS = Counter(
    "loopgate_event_handler_errors_total",
    "Errors of the resolution API's after-commit event handlers (the change stayed committed), by handler",
    ["handler"],
)
SLA_BREACHES = Counter("loopgate_sla_breaches_total", "Exceptions escalated for breaching an SLA", ["severity", "sla"])
OUTBOX_PUBLISH_FAILURES = Counter(
    "loopgate_outbox_publish_failures_total", "Failed attempts to publish pending outcomes to Kafka"
)
OUTBOX_SET_ASIDE = Counter(
    "loopgate_outbox_set_aside_total",
    "Outcomes set aside because they can never be published as they are, by error class",
    ["reason"],
)
OUTBOX_SET_ASIDE_ROWS = Gauge(
    "loopgate_outbox_set_aside_outcomes", "Outcomes in the outbox set aside (never publishable as they are)"
)
NOTIFICATIONS_SENT = Counter(
    "loopgate_notifications_sent_total",
    "Notifications a receiver accepted, by receiver (its configured name), kind and event",
    ["receiver", "kind", "event"],
)
NOTIFICATIONS_FAILED = Counter(
    "loopgate_notifications_failed_total",
    "Failed attempts to send a notification, by receiver (its configured name), kind and reason "
    "(timeout, connection, http_<status>); retried with backoff unless reason is refused",
    ["receiver", "kind", "reason"],
)
NOTIFICATIONS_SUPPRESSED = Counter(
    "loopgate_notifications_suppressed_total",
    "Notifications not sent, by reason (rate_limited: a flapping fingerprint; silenced)",
    ["reason"],
)
NOTIFICATIONS_PENDING = Gauge("loopgate_notifications_pending", "Notifications committed but not yet sent")
NOTIFICATION_BACKLOG_AGE = Gauge(
    "loopgate_notification_backlog_age_seconds",
    "Age of the oldest notification (or notification event) not yet sent; 0 when none waits",
)
NOTIFICATIONS_SET_ASIDE = Counter(
    "loopgate_notifications_set_aside_total",
    "Notifications set aside, never sent, by receiver (its configured name) and reason (unrenderable: "
    "its payload cannot be built from the row; unsendable: the request cannot be made; refused: the "
    "receiver answered 400, 413 or 422; receiver_gone: no longer configured)",
    ["receiver", "reason"],
)
NOTIFICATION_EVENTS_SET_ASIDE = Counter(
    "loopgate_notification_events_set_aside_total",
    "Notification events that could not be turned into notifications (a malformed row): set aside, "
    "the events behind them go on",
)
NOTIFICATION_RECEIVER_UP = Gauge(
    "loopgate_notification_receiver_up",
    "1 while a receiver takes notifications, 0 while it fails (down, slow, redirecting, refusing every "
    "notification: its URL, token or certificate); by receiver (its configured name)",
    ["receiver"],
)
OUTBOX_BROKER_UP = Gauge(
    "loopgate_outbox_broker_up",
    "1 while outcomes are published to Kafka, 0 while publishing fails (the broker is down, slow or "
    "refuses us: its address, credentials or ACLs)",
)
API_REQUESTS_REFUSED = Counter(
    "loopgate_api_requests_refused_total",
    "Requests refused at the door before parsing, by reason (body_too_large, too_deep)",
    ["reason"],
)

# Filled by prometheus-fastapi-instrumentator (resolution_api/app.py): the route template, never the
# path; the status class (2xx, 4xx, 5xx); unmatched paths are handler "none".
API_REQUESTS = Counter(
    "loopgate_api_requests_total",
    "HTTP requests answered, by route template, method and status class",
    ["handler", "method", "status"],
)
API_REQUEST_SECONDS = Histogram(
    "loopgate_api_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method",
    ["handler", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


# One bad row affects that row alone (issue 23): what the console's pages and the exports set aside.
ROWS_SET_ASIDE = Counter(
    "loopgate_rows_set_aside_total",
    "Stored rows a console page or an export could not render and set aside, the rest going on, by where "
    "(console_queue, console_exception, training_export)",
    ["where"],
)

# A second pair of eyes (issue 26, resolution_api/review/): resolutions chosen, and what their reviews came to.
SECOND_REVIEWS = Counter(
    "loopgate_api_second_reviews_total",
    "Second reviews by step: chosen (a resolution sealed for a blind second review), agreed, disagreed "
    "(a lead-queue exception opened), adjudicated (the lead's final decision)",
    ["step"],
)
for _step in ("chosen", "agreed", "disagreed", "adjudicated"):
    SECOND_REVIEWS.labels(_step)  # every step has a series from the start (the dashboard's rate)
SECOND_REVIEW_AGREEMENT = Gauge(
    "loopgate_api_second_review_agreement",
    "Agreement of first and second reviewers over the last 30 days, by rule (all: every rule) and figure (raw, "
    "kappa); NaN while undefined (no reviews, or one label only). Set from the database after each second "
    "decision and at start, so every API replica shows the same",
    ["rule", "figure"],
)
for _figure in ("raw", "kappa"):
    SECOND_REVIEW_AGREEMENT.labels("all", _figure).set(float("nan"))
