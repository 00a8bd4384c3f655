"""What an operator's status snapshot holds, as plain frozen dataclasses.

Every part has `to_dict()` giving JSON-ready values, so `connectin status --json`,
the /ops endpoints and the page all show the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Severity = Literal["breach", "warning"]


@dataclass(frozen=True)
class Leader:
    """The Postgres session holding a shard's advisory lock: the relay leading it."""

    pid: int
    application_name: str
    client_addr: str | None
    backend_start: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "application_name": self.application_name,
            "client_addr": self.client_addr,
            "backend_start": None if self.backend_start is None else self.backend_start.isoformat(),
        }


@dataclass(frozen=True)
class ShardStatus:
    shard: int
    pending: int
    # 0 when the shard has nothing unpublished, like the relay's own gauge.
    oldest_age_s: float
    leader: Leader | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "pending": self.pending,
            "oldest_age_s": round(self.oldest_age_s, 3),
            "leader": None if self.leader is None else self.leader.to_dict(),
        }


@dataclass(frozen=True)
class OutboxStatus:
    shards: tuple[ShardStatus, ...]
    relays_connected: int

    @property
    def pending(self) -> int:
        return sum(s.pending for s in self.shards)

    @property
    def oldest_age_s(self) -> float:
        return max((s.oldest_age_s for s in self.shards), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "oldest_age_s": round(self.oldest_age_s, 3),
            "relays_connected": self.relays_connected,
            "shards": [s.to_dict() for s in self.shards],
        }


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    # None when the group never committed on this partition; it then starts from the
    # earliest offset (auto.offset.reset=earliest), so that is what its lag counts from.
    committed: int | None
    # The last stable offset (read_committed): what a consumer of the group can read.
    end: int
    lag: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "committed": self.committed,
            "end": self.end,
            "lag": self.lag,
        }


@dataclass(frozen=True)
class GroupStatus:
    consumer: str
    group_id: str
    state: str
    members: int
    partitions: tuple[PartitionLag, ...]

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "consumer": self.consumer,
            "group_id": self.group_id,
            "state": self.state,
            "members": self.members,
            "lag": self.lag,
            "partitions": [p.to_dict() for p in self.partitions],
        }


@dataclass(frozen=True)
class ConsumersStatus:
    groups: tuple[GroupStatus, ...]

    @property
    def lag(self) -> int:
        return sum(g.lag for g in self.groups)

    def to_dict(self) -> dict[str, Any]:
        return {"lag": self.lag, "groups": [g.to_dict() for g in self.groups]}


@dataclass(frozen=True)
class DeadLetterStatus:
    unreplayed_by_topic: tuple[tuple[str, int], ...]

    @property
    def unreplayed(self) -> int:
        return sum(n for _, n in self.unreplayed_by_topic)

    def to_dict(self) -> dict[str, Any]:
        return {"unreplayed": self.unreplayed, "by_topic": dict(self.unreplayed_by_topic)}


@dataclass(frozen=True)
class Finding:
    """A threshold breached (non-zero exit, alert-worthy) or a warning worth a look."""

    severity: Severity
    kind: str
    subject: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
        }


@dataclass(frozen=True)
class StatusSnapshot:
    taken_at: datetime
    outbox: OutboxStatus | None
    consumers: ConsumersStatus | None
    dead_letters: DeadLetterStatus | None
    findings: tuple[Finding, ...]
    # Parts that could not be collected ("kafka: <why>"): the verdict is then unknown.
    errors: tuple[str, ...]
    thresholds: dict[str, float]

    @property
    def breaches(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "breach")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def verdict(self) -> Literal["ok", "breach", "unknown"]:
        if self.breaches:
            return "breach"
        return "unknown" if self.errors else "ok"

    @property
    def exit_code(self) -> int:
        """0 healthy, 1 a threshold breached, 2 some part could not be checked."""
        return {"ok": 0, "breach": 1, "unknown": 2}[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        return {
            "taken_at": self.taken_at.isoformat(),
            "verdict": self.verdict,
            "thresholds": self.thresholds,
            "outbox": None if self.outbox is None else self.outbox.to_dict(),
            "consumers": None if self.consumers is None else self.consumers.to_dict(),
            "dead_letters": None if self.dead_letters is None else self.dead_letters.to_dict(),
            "breaches": [f.to_dict() for f in self.breaches],
            "warnings": [f.to_dict() for f in self.warnings],
            "errors": list(self.errors),
        }
