"""Threshold verdicts over a snapshot's parts.

Breaches are the thresholds in settings (STATUS_MAX_OLDEST_UNPUBLISHED_S,
STATUS_MAX_CONSUMER_LAG): they make `connectin status` exit non-zero. Everything else
worth a look (a shard without a leader, dead letters waiting) is a warning: a shard
can be leaderless for a second during failover, and if it stays so its oldest event
ages past the threshold anyway.
"""

from __future__ import annotations

from core.settings import StatusThresholds
from core.status.model import ConsumersStatus, DeadLetterStatus, Finding, OutboxStatus


def plural(count: int, noun: str) -> str:
    suffix = "es" if noun.endswith(("s", "ch")) else "s"
    return f"{count} {noun}" + ("" if count == 1 else suffix)


def duration(seconds: float) -> str:
    """Short human age: 42s, 3m05s, 2h10m, 3d4h."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def outbox_findings(outbox: OutboxStatus, limits: StatusThresholds) -> list[Finding]:
    findings: list[Finding] = []
    for shard in outbox.shards:
        if shard.oldest_age_s > limits.max_oldest_unpublished_s:
            findings.append(
                Finding(
                    "breach",
                    "oldest_unpublished",
                    f"shard {shard.shard}",
                    f"oldest unpublished event is {duration(shard.oldest_age_s)} old "
                    f"(limit {duration(limits.max_oldest_unpublished_s)}, "
                    f"{shard.pending} pending)",
                )
            )
        if shard.leader is None:
            findings.append(
                Finding(
                    "warning",
                    "no_leader",
                    f"shard {shard.shard}",
                    "no relay leads this shard "
                    f"({plural(outbox.relays_connected, 'relay')} connected)",
                )
            )
    return findings


def consumer_findings(consumers: ConsumersStatus, limits: StatusThresholds) -> list[Finding]:
    findings: list[Finding] = []
    for group in consumers.groups:
        # The limit is per group (all its partitions): "how many events behind".
        if group.lag > limits.max_consumer_lag:
            findings.append(
                Finding(
                    "breach",
                    "consumer_lag",
                    f"group {group.consumer}",
                    f"lag {group.lag} events (limit {limits.max_consumer_lag})",
                )
            )
        if group.lag > 0 and group.members == 0:
            findings.append(
                Finding(
                    "warning",
                    "no_members",
                    f"group {group.consumer}",
                    f"{group.lag} events waiting and no consumer is running",
                )
            )
    return findings


def dead_letter_findings(dead_letters: DeadLetterStatus) -> list[Finding]:
    return [
        Finding(
            "warning",
            "dead_letters",
            f"topic {topic}",
            f"{plural(count, 'dead letter')} not replayed (connectin dlq list --pending)",
        )
        for topic, count in dead_letters.unreplayed_by_topic
    ]


def thresholds_dict(limits: StatusThresholds) -> dict[str, float]:
    return {
        "max_oldest_unpublished_s": limits.max_oldest_unpublished_s,
        "max_consumer_lag": limits.max_consumer_lag,
    }
