"""Prometheus metrics of the relay (served on RELAY_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PENDING = Gauge("connectin_outbox_pending_events", "Unpublished outbox events per shard", ["shard"])
OLDEST_AGE = Gauge(
    "connectin_outbox_oldest_unpublished_age_seconds",
    "Age of the oldest unpublished outbox event per shard (0 when none)",
    ["shard"],
)
PUBLISHED = Counter(
    "connectin_relay_published_events_total", "Events committed to Kafka by this relay", ["shard"]
)
BATCH_SIZE = Histogram(
    "connectin_relay_batch_size",
    "Events per committed Kafka transaction",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
BATCH_SECONDS = Histogram(
    "connectin_relay_batch_duration_seconds",
    "Time from fetching a batch to marking it published",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
COMMIT_FAILURES = Counter(
    "connectin_relay_commit_failures_total",
    "Kafka transactions that did not commit, by kind (aborted, fenced)",
    ["shard", "kind"],
)
DEAD_LETTERED = Counter(
    "connectin_relay_dead_lettered_total",
    "Outbox rows that could never be published and were moved to dead_letters",
    ["shard"],
)
RECOVERED = Counter(
    "connectin_relay_recovered_events_total",
    "Rows marked published from the last checkpoint on taking a shard",
    ["shard"],
)
SHARDS_LED = Gauge("connectin_relay_shards_led", "Shards this relay currently leads")
RETENTION_DELETED = Counter(
    "connectin_outbox_retention_deleted_total", "Published outbox rows removed by retention"
)
PERMANENT_DB_ERRORS = Counter(
    "connectin_relay_permanent_db_errors_total",
    "Database errors retrying cannot fix (integrity, data, schema, permission), by SQLSTATE",
    ["shard", "sqlstate"],
)
SHARDS_PARKED = Gauge(
    "connectin_relay_shards_parked",
    "Shards this relay holds but stopped after a permanent database error",
)
EVICTIONS = Counter(
    "connectin_relay_evictions_total",
    "Frozen relays (lease connection idle past RELAY_LEASE_TIMEOUT_MS) this relay evicted",
)
