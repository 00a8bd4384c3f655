"""The one settings object, read from the environment (12-factor).

Every process builds a `Settings` once at start-up with `Settings.from_env()` and
passes it (or the part it needs) down; nothing else reads `os.environ`.

Each field is declared once, with its variable, default, parser and documentation
(core/settings_vars.py): `from_env`, `to_env` and README's configuration table
(`python -m core.settings_readme`) all come from these declarations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from core.settings_vars import (
    Bool,
    Choice,
    Float,
    Int,
    Items,
    Networks,
    Parser,
    SettingsError,
    Text,
    build,
    declared,
    parse_all,
    setting,
    values,
)

__all__ = [
    "DEVELOPMENT",
    "ENVIRONMENTS",
    "PRODUCTION",
    "TEST",
    "ApiSettings",
    "AuthSettings",
    "ConsumerSettings",
    "DatabaseSettings",
    "KafkaSettings",
    "RelaySettings",
    "Settings",
    "SettingsError",
    "StatusThresholds",
    "StripeSettings",
    "TopicSettings",
    "async_database_url",
]

# TLS on loopback only costs CPU (a quarter of the relay's time in a profile).
DEFAULT_DATABASE_URL = "postgresql://connectin:connectin@127.0.0.1:5432/connectin?sslmode=disable"
DEFAULT_KAFKA = "127.0.0.1:9092"

DEVELOPMENT = "development"
TEST = "test"
PRODUCTION = "production"
ENVIRONMENTS = (DEVELOPMENT, TEST, PRODUCTION)

PROXY_HEADERS = ("x-forwarded-for", "forwarded")

# Codecs librdkafka writes. Readers need the same codec: plain aiokafka (the seed's
# client) and KafkaJS read only gzip and none without extra packages or plugins.
COMPRESSION_CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def _rewrite_url(url: str, scheme: str, ssl_param: str, path: str | None = None) -> str:
    """Change scheme, the name of the TLS parameter and maybe the database, leaving the
    rest (credentials with their %-escapes) exactly as written."""
    parts = urlsplit(url)
    query = [
        (ssl_param if name in ("ssl", "sslmode") else name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(
        (scheme, parts.netloc, parts.path if path is None else path, urlencode(query), "")
    )


def async_database_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (what psql and Docker print) and use asyncpg,
    which spells libpq's `sslmode` as `ssl`."""
    return _rewrite_url(url, "postgresql+asyncpg", "ssl")


def libpq_database_url(url: str) -> str:
    return _rewrite_url(url, "postgresql", "sslmode")


class DatabaseUrl(Parser):
    def parse(self, name: str, raw: str | None, default: Any, parsed: Mapping[str, Any]) -> str:
        return async_database_url(raw or default)

    def show(self, default: Any) -> str:
        return f"`{libpq_database_url(default)}`"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = setting(
        "DATABASE_URL",
        async_database_url(DEFAULT_DATABASE_URL),
        DatabaseUrl(),
        "Postgres (driven by asyncpg; `sslmode` is passed on as asyncpg's `ssl`)",
    )
    pool_size: int = setting(
        "DATABASE_POOL_SIZE", 10, Int(minimum=1), "connections per process (per API worker)"
    )
    max_overflow: int = setting(
        "DATABASE_MAX_OVERFLOW",
        10,
        Int(),
        "connections above the pool size; the API keeps them open instead of closing them "
        "after each use",
    )

    @property
    def libpq_url(self) -> str:
        """The same database as a plain libpq URL (psql, pg tools)."""
        return libpq_database_url(self.url)

    def with_database(self, name: str) -> DatabaseSettings:
        """The same server and options, another database (tests, benchmarks)."""
        return replace(self, url=_rewrite_url(self.url, "postgresql+asyncpg", "ssl", "/" + name))


@dataclass(frozen=True)
class TopicSettings:
    user: str = setting("TOPIC_USER_EVENTS", "user-events", Text(), "event topic of users")
    project: str = setting(
        "TOPIC_PROJECT_EVENTS", "project-events", Text(), "event topic of projects"
    )
    message: str = setting(
        "TOPIC_MESSAGE_EVENTS", "message-events", Text(), "event topic of messages"
    )
    payment: str = setting(
        "TOPIC_PAYMENT_EVENTS", "payment-events", Text(), "event topic of payments"
    )
    checkpoint: str = setting(
        "TOPIC_RELAY_CHECKPOINTS",
        "connectin-relay-checkpoints",
        Text(),
        "the relay's checkpoints: compacted, one partition per shard",
    )
    partitions: int = setting(
        "TOPIC_PARTITIONS",
        6,
        Int(minimum=1),
        "partitions of the event topics (and their dead-letter topics): the most consumer "
        "processes a group can use on one topic, and fixed once keys are written (adding "
        "some moves keys and breaks their order). Each partition a relay transaction "
        "touches costs the broker a commit marker: fewer give a lower commit latency (*How "
        "many shards*)",
    )

    @property
    def event_topics(self) -> tuple[str, ...]:
        return (self.user, self.project, self.message, self.payment)


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = setting("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_KAFKA, Text(), "Kafka")
    local_brokers: int = setting(
        "KAFKA_LOCAL_BROKERS",
        1,
        Int(minimum=1),
        "nodes of the Kafka cluster `connectin services up` runs locally "
        "(`--kafka-brokers N` overrides); 3 = replicated (RF 3, `min.insync.replicas=2`); "
        "ignored for servers it did not start",
    )
    transactional_id_prefix: str = setting(
        "KAFKA_TRANSACTIONAL_ID_PREFIX",
        "connectin",
        Text(),
        "relay producers use `<prefix>-relay-<shard>`, consumer groups `<prefix>-<consumer>`; "
        "also namespaces the shard locks",
    )
    topics: TopicSettings = field(default_factory=TopicSettings)

    def namespaced(self, suffix: str) -> KafkaSettings:
        """Topics and transactional ids of their own, so several platforms (test runs,
        benchmarks) share one broker without seeing each other's events."""
        t = self.topics
        return replace(
            self,
            transactional_id_prefix=f"{self.transactional_id_prefix}-{suffix}",
            topics=replace(
                t,
                user=f"{t.user}-{suffix}",
                project=f"{t.project}-{suffix}",
                message=f"{t.message}-{suffix}",
                payment=f"{t.payment}-{suffix}",
                checkpoint=f"{t.checkpoint}-{suffix}",
            ),
        )


@dataclass(frozen=True)
class RelaySettings:
    shards: int = setting(
        "RELAY_SHARDS",
        1,
        Int(minimum=1),
        "outbox shards: one leader and one stream of Kafka transactions each, so at most "
        "this many relays publish at once (the others stand by). Change it on writers and "
        "relays together with writes paused; a relay refuses to start while rows wait in "
        "shards it would never lead, and grows the checkpoint topic when it is raised",
    )
    batch_size: int = setting(
        "RELAY_BATCH_SIZE", 1000, Int(minimum=1), "events per Kafka transaction"
    )
    accumulate_ms: int = setting(
        "RELAY_ACCUMULATE_MS",
        10,
        Int(),
        "while rows keep arriving, longest wait for more before publishing a partial batch "
        "(none after an idle spell or for a full batch; 0 = never wait)",
    )
    idle_poll_ms: int = setting(
        "RELAY_IDLE_POLL_MS",
        10,
        Int(minimum=1),
        "longest wait between polls for idle shards (one query for all of them, adaptive "
        "from 1 ms)",
    )
    lock_check_ms: int = setting(
        "RELAY_LOCK_CHECK_MS",
        1000,
        Int(minimum=50),
        "how often leases are verified and rebalanced",
    )
    # Keep it well above any pause a healthy relay can have; its own heartbeat beats
    # 4x as often. Detection needs a couple of lock checks of slack.
    lease_timeout_ms: int = setting(
        "RELAY_LEASE_TIMEOUT_MS",
        5000,
        Int(floor=("RELAY_LOCK_CHECK_MS", 2)),
        "a relay whose lease connection has been idle this long (frozen: SIGSTOP, a blocked "
        "event loop, a paused VM) is evicted by a live relay, which then takes its shards: "
        "they move within about this time plus one lock check",
        shown="`5000` (at least twice `RELAY_LOCK_CHECK_MS`)",
    )
    transaction_timeout_ms: int = setting(
        "RELAY_TRANSACTION_TIMEOUT_MS",
        30_000,
        Int(minimum=1000),
        "Kafka `transaction.timeout.ms`",
    )
    linger_ms: int = setting("RELAY_LINGER_MS", 2, Int(), "producer tuning (`linger.ms`)")
    compression: str = setting(
        "RELAY_COMPRESSION",
        "none",
        Choice(COMPRESSION_CODECS),
        "`none`, `gzip`, `snappy`, `lz4` or `zstd`. Every consumer must decode it: plain "
        "`pip install aiokafka` (the seed's client) and KafkaJS without codec plugins read "
        "only `none` and `gzip`. `lz4`/`zstd` drain faster here (see *Compression* below) "
        "but are an opt-in for deployments whose every client has the codec "
        "(`aiokafka[lz4]`, KafkaJS `kafkajs-lz4`, ...)",
    )
    max_message_bytes: int = setting(
        "RELAY_MAX_MESSAGE_BYTES",
        1_000_000,
        Int(minimum=1024),
        "larger events go to `dead_letters` instead of blocking the shard",
    )
    metrics_port: int = setting(
        "RELAY_METRICS_PORT",
        9101,
        Int(),
        "Prometheus metrics of the relay (0 = off). A port already taken (a second relay on "
        "the host) stops the process at start with one log line naming the variable and "
        "exit code 3: give each process its own port",
    )
    retention_hours: float = setting(
        "OUTBOX_RETENTION_HOURS",
        72.0,
        Float(),
        "published rows older than this are deleted",
    )
    retention_batch: int = setting(
        "OUTBOX_RETENTION_BATCH",
        10_000,
        Int(minimum=1),
        "rows deleted per retention transaction",
    )
    failpoint: str = setting(
        "RELAY_FAILPOINT",
        "",
        Text(keep_empty=True),
        "crash tests only: `<point>[:<probability>[:SIGKILL|SIGTERM[:<seed>]]]` makes the "
        "relay signal itself at that point (SIGKILL by default; the seed makes the draws "
        "repeatable)",
    )


@dataclass(frozen=True)
class ConsumerSettings:
    max_attempts: int = setting(
        "CONSUMER_MAX_ATTEMPTS",
        5,
        Int(minimum=1),
        "attempts of a failing record before it is dead-lettered",
    )
    retry_backoff_ms: int = setting(
        "CONSUMER_RETRY_BACKOFF_MS",
        200,
        Int(),
        "wait after a record's first failure, doubling after each further one (jittered, "
        "at most 30 s)",
    )
    metrics_port: int = setting(
        "CONSUMER_METRICS_PORT",
        9102,
        Int(),
        "Prometheus metrics of the consumers (0 = off; a taken port: exit code 3, as for "
        "the relay)",
    )
    instance_id: str = setting(
        "CONSUMER_INSTANCE_ID",
        "",
        Text(keep_empty=True),
        "Kafka static membership id of this consumers process (one per replica): a restart "
        "gets its partitions back at once",
    )
    failpoint: str = setting(
        "CONSUMER_FAILPOINT",
        "",
        Text(keep_empty=True),
        "crash tests only: `mid_batch:<probability>` makes the consumers process SIGKILL "
        "itself after a record's handlers, in the middle of a batch, before its commit",
    )


@dataclass(frozen=True)
class AuthSettings:
    jwt_secret: str = setting(
        "JWT_SECRET",
        "dev-only-secret-change-me-32-bytes!!",
        Text(),
        "signs API tokens; production wants your own of at least 32 bytes",
        shown="published dev secret",
    )
    issuer: str = setting("JWT_ISSUER", "connectin", Text(), "API tokens' issuer")
    audience: str = setting("JWT_AUDIENCE", "connectin-api", Text(), "API tokens' audience")
    token_ttl_s: int = setting(
        "JWT_TTL_S", 3600, Int(minimum=1), "API tokens' lifetime, in seconds"
    )
    login_attempts_per_minute: int = setting(
        "LOGIN_ATTEMPTS_PER_MINUTE",
        10,
        Int(minimum=1),
        "login attempts per account (normalised email or username), from any address, "
        "shared by all API processes",
    )
    login_address_attempts_per_minute: int = setting(
        "LOGIN_ADDRESS_ATTEMPTS_PER_MINUTE",
        30,
        Int(minimum=1),
        "login attempts per client address (IPv6: per /64), whatever the accounts",
    )


@dataclass(frozen=True)
class ApiSettings:
    # Empty: the TCP peer is the client and forwarding headers are ignored
    # (api/client_address.py).
    trusted_proxies: tuple[str, ...] = setting(
        "TRUSTED_PROXIES",
        (),
        Networks(),
        "comma-separated IPs/CIDRs of our reverse proxies; only from these peers is the "
        "forwarding header read",
    )
    proxy_header: str = setting(
        "TRUSTED_PROXY_HEADER",
        "x-forwarded-for",
        Choice(PROXY_HEADERS),
        "which header those proxies set: `x-forwarded-for` or `forwarded` (RFC 7239)",
    )
    cors_origins: tuple[str, ...] = setting(
        "CORS_ORIGINS",
        ("http://localhost:3000",),
        Items(),
        "comma-separated allowed origins",
    )
    max_body_bytes: int = setting(
        "API_MAX_BODY_BYTES", 1_048_576, Int(minimum=1024), "request body limit (413 above)"
    )
    ops_token: str = setting(
        "OPS_TOKEN",
        "",
        Text(keep_empty=True),
        "bearer token for `/ops/*`; in production at least 32 bytes when set; `connectin up` "
        "in development invents one per run",
        shown="empty (ops endpoints refuse all)",
    )
    cookie_secure: bool = setting(
        "COOKIE_SECURE",
        True,
        Bool(off_in=DEVELOPMENT),
        "the login cookie's `Secure` flag",
        shown="`true`, `false` in development",
    )


@dataclass(frozen=True)
class StripeSettings:
    secret_key: str = setting(
        "STRIPE_SECRET_KEY",
        "sk_test_connectin",
        Text(),
        "Stripe secret key; production wants an `sk_`/`rk_` key of at least 32 bytes",
    )
    publishable_key: str = setting(
        "STRIPE_PUBLISHABLE_KEY",
        "pk_test_connectin",
        Text(),
        "Stripe publishable key, served by `GET /api/v1/payments/config`",
    )
    webhook_secret: str = setting(
        "STRIPE_WEBHOOK_SECRET",
        "whsec_connectin_dev",
        Text(),
        "endpoint signing secret; `connectin up` registers it with localstripe; production "
        "wants at least 32 bytes",
    )
    api_base: str = setting(
        "STRIPE_API_BASE",
        "",
        Text(keep_empty=True),
        "e.g. `http://127.0.0.1:8420` for localstripe (`connectin up` sets it)",
        shown="empty (real Stripe)",
    )
    max_amount: int = setting(
        "STRIPE_MAX_AMOUNT", 1_000_000, Int(minimum=1), "largest payment intent, in minor units"
    )
    currencies: tuple[str, ...] = setting(
        "STRIPE_CURRENCIES", ("usd", "eur", "gbp"), Items(), "allowed currencies"
    )
    webhook_tolerance_s: int = setting(
        "STRIPE_WEBHOOK_TOLERANCE_S",
        300,
        Int(minimum=1),
        "oldest accepted webhook signature timestamp, in seconds",
    )


@dataclass(frozen=True)
class StatusThresholds:
    max_oldest_unpublished_s: float = setting(
        "STATUS_MAX_OLDEST_UNPUBLISHED_S",
        60.0,
        Float(),
        "`connectin status` is unhealthy when an event waits longer than this for the relay",
    )
    max_consumer_lag: int = setting(
        "STATUS_MAX_CONSUMER_LAG",
        10_000,
        Int(),
        "`connectin status` is unhealthy when a consumer group lags more than this",
    )


@dataclass(frozen=True)
class Settings:
    # Production unless said otherwise: only development and test may start on the
    # published default secrets (core/secrets.py).
    environment: str = setting(
        "CONNECTIN_ENV",
        PRODUCTION,
        Choice(ENVIRONMENTS),
        "`development`, `test` or `production`; only development and test start on the "
        "published default secrets (see [Security](#security))",
    )
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    relay: RelaySettings = field(default_factory=RelaySettings)
    consumers: ConsumerSettings = field(default_factory=ConsumerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    stripe: StripeSettings = field(default_factory=StripeSettings)
    status: StatusThresholds = field(default_factory=StatusThresholds)
    log_level: str = setting(
        "LOG_LEVEL",
        "INFO",
        Text(upper=True),
        "JSON logs on stderr, every library's included, secrets redacted at every level",
    )

    def to_env(self) -> dict[str, str]:
        """Every variable, so `from_env` in a child process (relay, consumers, api
        started by `connectin up`, tests and benchmarks) rebuilds exactly these settings."""
        return {var.name: var.parser.format(value) for var, value in values(self)}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e: Mapping[str, str] = os.environ if env is None else env
        return build(cls, parse_all(declared(cls), e))
