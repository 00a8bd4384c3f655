"""The one settings object, read from the environment (12-factor).

Every process builds a `Settings` once at start-up with `Settings.from_env()` and
passes it (or the part it needs) down; nothing else reads `os.environ`.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# TLS on loopback only costs CPU (a quarter of the relay's time in a profile).
DEFAULT_DATABASE_URL = "postgresql://connectin:connectin@127.0.0.1:5432/connectin?sslmode=disable"
DEFAULT_KAFKA = "127.0.0.1:9092"

DEVELOPMENT = "development"
TEST = "test"
PRODUCTION = "production"
ENVIRONMENTS = (DEVELOPMENT, TEST, PRODUCTION)


class SettingsError(ValueError):
    """An environment variable holds a value the platform cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _environment(env: Mapping[str, str]) -> str:
    raw = env.get("CONNECTIN_ENV") or PRODUCTION
    value = raw.strip().lower()
    if value not in ENVIRONMENTS:
        raise SettingsError(f"CONNECTIN_ENV must be one of {', '.join(ENVIRONMENTS)}, got {raw!r}")
    return value


def _list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None:
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())


PROXY_HEADERS = ("x-forwarded-for", "forwarded")


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Validated and in canonical form (`10.0.0.0/8`, `::1/128`)."""
    networks: list[str] = []
    for item in _list(env, name, ()):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise SettingsError(
                f"{name} must list IP addresses or networks (CIDR), got {item!r}"
            ) from None
    return tuple(networks)


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


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


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = field(default_factory=lambda: async_database_url(DEFAULT_DATABASE_URL))
    pool_size: int = 10
    max_overflow: int = 10

    @property
    def libpq_url(self) -> str:
        """The same database as a plain libpq URL (psql, pg tools)."""
        return _rewrite_url(self.url, "postgresql", "sslmode")

    def with_database(self, name: str) -> DatabaseSettings:
        """The same server and options, another database (tests, benchmarks)."""
        return replace(self, url=_rewrite_url(self.url, "postgresql+asyncpg", "ssl", "/" + name))


@dataclass(frozen=True)
class TopicSettings:
    user: str = "user-events"
    project: str = "project-events"
    message: str = "message-events"
    payment: str = "payment-events"
    checkpoint: str = "connectin-relay-checkpoints"
    partitions: int = 6

    @property
    def event_topics(self) -> tuple[str, ...]:
        return (self.user, self.project, self.message, self.payment)


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = DEFAULT_KAFKA
    transactional_id_prefix: str = "connectin"
    topics: TopicSettings = field(default_factory=TopicSettings)
    # Nodes of the cluster `connectin services up` runs locally (its first node at
    # KAFKA_BOOTSTRAP_SERVERS); 3 gives replicated topics. Ignored for servers it did
    # not start.
    local_brokers: int = 1

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


# Codecs librdkafka writes. Readers need the same codec: plain aiokafka (the seed's
# client) and KafkaJS read only gzip and none without extra packages or plugins.
COMPRESSION_CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


@dataclass(frozen=True)
class RelaySettings:
    shards: int = 4
    batch_size: int = 1000
    # Longest wait for more rows before publishing a partial batch while rows keep
    # arriving (see relay/shard_worker.py); 0 = publish what one fetch finds.
    accumulate_ms: int = 10
    idle_poll_ms: int = 10
    lock_check_ms: int = 1000
    # A relay whose lease connection has been idle this long (frozen, event loop
    # blocked) loses its shards: a live relay terminates that backend. Keep it well
    # above any pause a healthy relay can have; its own heartbeat beats 4x as often.
    lease_timeout_ms: int = 5000
    transaction_timeout_ms: int = 30_000
    linger_ms: int = 2
    compression: str = "none"
    retention_hours: float = 72.0
    retention_batch: int = 10_000
    max_message_bytes: int = 1_000_000
    metrics_port: int = 9101
    # Crash-test hook: "<point>:<probability>" makes the relay SIGKILL itself at that
    # point (see relay/failpoints.py). Empty in production.
    failpoint: str = ""


@dataclass(frozen=True)
class ConsumerSettings:
    max_attempts: int = 5
    retry_backoff_ms: int = 200
    metrics_port: int = 9102
    # Kafka static membership id (one per process, stable across its restarts): a
    # restarted process gets its partitions back at once instead of after the session
    # timeout. Empty = dynamic membership.
    instance_id: str = ""
    # Crash-test hook: "mid_batch:<probability>" (see consumers/failpoints.py).
    failpoint: str = ""


@dataclass(frozen=True)
class AuthSettings:
    jwt_secret: str = "dev-only-secret-change-me-32-bytes!!"
    issuer: str = "connectin"
    audience: str = "connectin-api"
    token_ttl_s: int = 3600
    # Login throttling (api/ratelimit.py): attempts per account, whatever the address,
    # and per client address, whatever the account.
    login_attempts_per_minute: int = 10
    login_address_attempts_per_minute: int = 30


@dataclass(frozen=True)
class ApiSettings:
    cors_origins: tuple[str, ...] = ("http://localhost:3000",)
    max_body_bytes: int = 1_048_576
    ops_token: str = ""
    # Peers whose forwarding header names the client (api/client_address.py). Empty:
    # the TCP peer is the client and forwarding headers are ignored.
    trusted_proxies: tuple[str, ...] = ()
    proxy_header: str = "x-forwarded-for"
    # The login cookie's Secure flag; from_env turns it on outside development.
    cookie_secure: bool = True


@dataclass(frozen=True)
class StripeSettings:
    secret_key: str = "sk_test_connectin"
    publishable_key: str = "pk_test_connectin"
    webhook_secret: str = "whsec_connectin_dev"
    api_base: str = ""
    max_amount: int = 1_000_000
    currencies: tuple[str, ...] = ("usd", "eur", "gbp")
    webhook_tolerance_s: int = 300


@dataclass(frozen=True)
class StatusThresholds:
    max_oldest_unpublished_s: float = 60.0
    max_consumer_lag: int = 10_000


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    relay: RelaySettings = field(default_factory=RelaySettings)
    consumers: ConsumerSettings = field(default_factory=ConsumerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    stripe: StripeSettings = field(default_factory=StripeSettings)
    status: StatusThresholds = field(default_factory=StatusThresholds)
    log_level: str = "INFO"
    # Production unless said otherwise: only development and test may start on the
    # published default secrets (core/secrets.py).
    environment: str = PRODUCTION

    def to_env(self) -> dict[str, str]:
        """Every variable, so `from_env` in a child process (relay, consumers, api
        started by `connectin up`, tests and benchmarks) rebuilds exactly these settings."""
        t = self.kafka.topics
        return {
            "CONNECTIN_ENV": self.environment,
            "DATABASE_URL": self.database.url,
            "DATABASE_POOL_SIZE": str(self.database.pool_size),
            "DATABASE_MAX_OVERFLOW": str(self.database.max_overflow),
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "KAFKA_TRANSACTIONAL_ID_PREFIX": self.kafka.transactional_id_prefix,
            "KAFKA_LOCAL_BROKERS": str(self.kafka.local_brokers),
            "TOPIC_USER_EVENTS": t.user,
            "TOPIC_PROJECT_EVENTS": t.project,
            "TOPIC_MESSAGE_EVENTS": t.message,
            "TOPIC_PAYMENT_EVENTS": t.payment,
            "TOPIC_RELAY_CHECKPOINTS": t.checkpoint,
            "TOPIC_PARTITIONS": str(t.partitions),
            "RELAY_SHARDS": str(self.relay.shards),
            "RELAY_BATCH_SIZE": str(self.relay.batch_size),
            "RELAY_ACCUMULATE_MS": str(self.relay.accumulate_ms),
            "RELAY_IDLE_POLL_MS": str(self.relay.idle_poll_ms),
            "RELAY_LOCK_CHECK_MS": str(self.relay.lock_check_ms),
            "RELAY_TRANSACTION_TIMEOUT_MS": str(self.relay.transaction_timeout_ms),
            "RELAY_LINGER_MS": str(self.relay.linger_ms),
            "RELAY_COMPRESSION": self.relay.compression,
            "OUTBOX_RETENTION_HOURS": repr(self.relay.retention_hours),
            "OUTBOX_RETENTION_BATCH": str(self.relay.retention_batch),
            "RELAY_LEASE_TIMEOUT_MS": str(self.relay.lease_timeout_ms),
            "RELAY_METRICS_PORT": str(self.relay.metrics_port),
            "RELAY_MAX_MESSAGE_BYTES": str(self.relay.max_message_bytes),
            "RELAY_FAILPOINT": self.relay.failpoint,
            "CONSUMER_MAX_ATTEMPTS": str(self.consumers.max_attempts),
            "CONSUMER_RETRY_BACKOFF_MS": str(self.consumers.retry_backoff_ms),
            "CONSUMER_METRICS_PORT": str(self.consumers.metrics_port),
            "CONSUMER_INSTANCE_ID": self.consumers.instance_id,
            "JWT_SECRET": self.auth.jwt_secret,
            "JWT_ISSUER": self.auth.issuer,
            "JWT_AUDIENCE": self.auth.audience,
            "JWT_TTL_S": str(self.auth.token_ttl_s),
            "LOGIN_ATTEMPTS_PER_MINUTE": str(self.auth.login_attempts_per_minute),
            "LOGIN_ADDRESS_ATTEMPTS_PER_MINUTE": str(self.auth.login_address_attempts_per_minute),
            "TRUSTED_PROXIES": ",".join(self.api.trusted_proxies),
            "TRUSTED_PROXY_HEADER": self.api.proxy_header,
            "CORS_ORIGINS": ",".join(self.api.cors_origins),
            "API_MAX_BODY_BYTES": str(self.api.max_body_bytes),
            "OPS_TOKEN": self.api.ops_token,
            "COOKIE_SECURE": "true" if self.api.cookie_secure else "false",
            "STRIPE_SECRET_KEY": self.stripe.secret_key,
            "STRIPE_PUBLISHABLE_KEY": self.stripe.publishable_key,
            "STRIPE_WEBHOOK_SECRET": self.stripe.webhook_secret,
            "STRIPE_API_BASE": self.stripe.api_base,
            "STRIPE_MAX_AMOUNT": str(self.stripe.max_amount),
            "STRIPE_CURRENCIES": ",".join(self.stripe.currencies),
            "STRIPE_WEBHOOK_TOLERANCE_S": str(self.stripe.webhook_tolerance_s),
            "STATUS_MAX_OLDEST_UNPUBLISHED_S": repr(self.status.max_oldest_unpublished_s),
            "STATUS_MAX_CONSUMER_LAG": str(self.status.max_consumer_lag),
            "CONSUMER_FAILPOINT": self.consumers.failpoint,
            "LOG_LEVEL": self.log_level,
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e: Mapping[str, str] = os.environ if env is None else env
        d = cls()
        environment = _environment(e)
        shards = _int(e, "RELAY_SHARDS", d.relay.shards, minimum=1)
        lock_check_ms = _int(e, "RELAY_LOCK_CHECK_MS", d.relay.lock_check_ms, minimum=50)
        # Detection needs a couple of lock checks of slack; a slower check interval
        # raises the default rather than failing on a variable nobody set.
        lease_timeout_ms = _int(
            e,
            "RELAY_LEASE_TIMEOUT_MS",
            max(d.relay.lease_timeout_ms, 2 * lock_check_ms),
            minimum=2 * lock_check_ms,
        )
        return cls(
            database=DatabaseSettings(
                url=async_database_url(e.get("DATABASE_URL") or DEFAULT_DATABASE_URL),
                pool_size=_int(e, "DATABASE_POOL_SIZE", d.database.pool_size, minimum=1),
                max_overflow=_int(e, "DATABASE_MAX_OVERFLOW", d.database.max_overflow),
            ),
            kafka=KafkaSettings(
                bootstrap_servers=e.get("KAFKA_BOOTSTRAP_SERVERS") or d.kafka.bootstrap_servers,
                transactional_id_prefix=e.get("KAFKA_TRANSACTIONAL_ID_PREFIX")
                or d.kafka.transactional_id_prefix,
                local_brokers=_int(e, "KAFKA_LOCAL_BROKERS", d.kafka.local_brokers, minimum=1),
                topics=TopicSettings(
                    user=e.get("TOPIC_USER_EVENTS") or d.kafka.topics.user,
                    project=e.get("TOPIC_PROJECT_EVENTS") or d.kafka.topics.project,
                    message=e.get("TOPIC_MESSAGE_EVENTS") or d.kafka.topics.message,
                    payment=e.get("TOPIC_PAYMENT_EVENTS") or d.kafka.topics.payment,
                    checkpoint=e.get("TOPIC_RELAY_CHECKPOINTS") or d.kafka.topics.checkpoint,
                    partitions=_int(e, "TOPIC_PARTITIONS", d.kafka.topics.partitions, minimum=1),
                ),
            ),
            relay=RelaySettings(
                shards=shards,
                batch_size=_int(e, "RELAY_BATCH_SIZE", d.relay.batch_size, minimum=1),
                accumulate_ms=_int(e, "RELAY_ACCUMULATE_MS", d.relay.accumulate_ms),
                idle_poll_ms=_int(e, "RELAY_IDLE_POLL_MS", d.relay.idle_poll_ms, minimum=1),
                lock_check_ms=lock_check_ms,
                lease_timeout_ms=lease_timeout_ms,
                transaction_timeout_ms=_int(
                    e, "RELAY_TRANSACTION_TIMEOUT_MS", d.relay.transaction_timeout_ms, 1000
                ),
                linger_ms=_int(e, "RELAY_LINGER_MS", d.relay.linger_ms),
                compression=_choice(
                    e, "RELAY_COMPRESSION", d.relay.compression, COMPRESSION_CODECS
                ),
                retention_hours=_float(e, "OUTBOX_RETENTION_HOURS", d.relay.retention_hours),
                retention_batch=_int(
                    e, "OUTBOX_RETENTION_BATCH", d.relay.retention_batch, minimum=1
                ),
                max_message_bytes=_int(
                    e, "RELAY_MAX_MESSAGE_BYTES", d.relay.max_message_bytes, minimum=1024
                ),
                metrics_port=_int(e, "RELAY_METRICS_PORT", d.relay.metrics_port),
                failpoint=e.get("RELAY_FAILPOINT", d.relay.failpoint),
            ),
            consumers=ConsumerSettings(
                max_attempts=_int(e, "CONSUMER_MAX_ATTEMPTS", d.consumers.max_attempts, 1),
                retry_backoff_ms=_int(e, "CONSUMER_RETRY_BACKOFF_MS", d.consumers.retry_backoff_ms),
                metrics_port=_int(e, "CONSUMER_METRICS_PORT", d.consumers.metrics_port),
                instance_id=e.get("CONSUMER_INSTANCE_ID", d.consumers.instance_id),
                failpoint=e.get("CONSUMER_FAILPOINT", d.consumers.failpoint),
            ),
            auth=AuthSettings(
                jwt_secret=e.get("JWT_SECRET") or d.auth.jwt_secret,
                issuer=e.get("JWT_ISSUER") or d.auth.issuer,
                audience=e.get("JWT_AUDIENCE") or d.auth.audience,
                token_ttl_s=_int(e, "JWT_TTL_S", d.auth.token_ttl_s, minimum=1),
                login_attempts_per_minute=_int(
                    e, "LOGIN_ATTEMPTS_PER_MINUTE", d.auth.login_attempts_per_minute, 1
                ),
                login_address_attempts_per_minute=_int(
                    e,
                    "LOGIN_ADDRESS_ATTEMPTS_PER_MINUTE",
                    d.auth.login_address_attempts_per_minute,
                    1,
                ),
            ),
            api=ApiSettings(
                cors_origins=_list(e, "CORS_ORIGINS", d.api.cors_origins),
                max_body_bytes=_int(e, "API_MAX_BODY_BYTES", d.api.max_body_bytes, 1024),
                ops_token=e.get("OPS_TOKEN", d.api.ops_token),
                trusted_proxies=_networks(e, "TRUSTED_PROXIES"),
                proxy_header=_choice(e, "TRUSTED_PROXY_HEADER", d.api.proxy_header, PROXY_HEADERS),
                cookie_secure=_bool(e, "COOKIE_SECURE", environment != DEVELOPMENT),
            ),
            stripe=StripeSettings(
                secret_key=e.get("STRIPE_SECRET_KEY") or d.stripe.secret_key,
                publishable_key=e.get("STRIPE_PUBLISHABLE_KEY") or d.stripe.publishable_key,
                webhook_secret=e.get("STRIPE_WEBHOOK_SECRET") or d.stripe.webhook_secret,
                api_base=e.get("STRIPE_API_BASE", d.stripe.api_base),
                max_amount=_int(e, "STRIPE_MAX_AMOUNT", d.stripe.max_amount, minimum=1),
                currencies=_list(e, "STRIPE_CURRENCIES", d.stripe.currencies),
                webhook_tolerance_s=_int(
                    e, "STRIPE_WEBHOOK_TOLERANCE_S", d.stripe.webhook_tolerance_s, 1
                ),
            ),
            status=StatusThresholds(
                max_oldest_unpublished_s=_float(
                    e, "STATUS_MAX_OLDEST_UNPUBLISHED_S", d.status.max_oldest_unpublished_s
                ),
                max_consumer_lag=_int(e, "STATUS_MAX_CONSUMER_LAG", d.status.max_consumer_lag),
            ),
            log_level=(e.get("LOG_LEVEL") or d.log_level).upper(),
            environment=environment,
        )
