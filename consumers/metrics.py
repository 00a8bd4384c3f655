"""Prometheus metrics of the consumers (served on CONSUMER_METRICS_PORT), labelled by
consumer name (= consumer group)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PROCESSED = Counter(
    "connectin_consumer_processed_events_total",
    "Events whose effects were committed (first delivery of each event id)",
    ["consumer"],
)
DUPLICATES = Counter(
    "connectin_consumer_duplicates_skipped_total",
    "Deliveries skipped because processed_events already held the event id",
    ["consumer"],
)
RETRIES = Counter(
    "connectin_consumer_retries_total",
    "Handler attempts that failed and were retried after a backoff",
    ["consumer"],
)
DEAD_LETTERED = Counter(
    "connectin_consumer_dead_lettered_total",
    "Records parked in <topic>.dlq and dead_letters",
    ["consumer"],
)
HANDLER_SECONDS = Histogram(
    "connectin_consumer_handler_duration_seconds",
    "One Postgres transaction of a batch of records (one partition's slice of a poll, or"
    " one record being retried): dedup insert, sequence checks, effects, commit",
    ["consumer"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
SEQUENCE_ANOMALIES = Counter(
    "connectin_consumer_sequence_anomalies_total",
    "Per-key sequence numbers out of line (gap, regression, late_start); must stay 0",
    ["consumer", "kind"],
)
COMMIT_FAILURES = Counter(
    "connectin_consumer_offset_commit_failures_total",
    "Kafka offset commits that failed (the records are redelivered and skipped)",
    ["consumer"],
)
DB_UNAVAILABLE = Counter(
    "connectin_consumer_database_unavailable_total",
    "Attempts that found Postgres unreachable (waited for, not counted as retries)",
    ["consumer"],
)

ANOMALY_KINDS = ("gap", "regression", "late_start")


def declare(consumer: str) -> None:
    """Export every series of a consumer at 0 from the start, so rates and alerts work
    before the first event of a kind (an absent series is not a zero)."""
    for counter in (PROCESSED, DUPLICATES, RETRIES, DEAD_LETTERED, COMMIT_FAILURES, DB_UNAVAILABLE):
        counter.labels(consumer)
    HANDLER_SECONDS.labels(consumer)
    for kind in ANOMALY_KINDS:
        SEQUENCE_ANOMALIES.labels(consumer, kind)
