"""`connectin status`: is everything flowing, and where is it stuck? One screen.

Exit code 0 when healthy, 1 when a threshold (STATUS_MAX_OLDEST_UNPUBLISHED_S,
STATUS_MAX_CONSUMER_LAG) is breached, 2 when Postgres or Kafka could not be read,
so the command doubles as a health probe. `--json` for scripts, `--watch N` redraws
every N seconds until Ctrl-C (with `--json`: one JSON document per line).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from core.db import create_engine
from core.settings import Settings
from core.status import StatusCollector, StatusSnapshot
from core.status.model import ConsumersStatus, DeadLetterStatus, Finding, OutboxStatus
from core.status.verdict import duration, plural

CLEAR = "\x1b[H\x1b[2J"
MARKS = {"breach": "✗", "warning": "!"}


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    """Columns as wide as their widest cell; numbers (`right`) right-aligned."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        ]
        return ("  " + "  ".join(parts)).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _outbox(outbox: OutboxStatus, limit_s: float) -> list[str]:
    head = (
        f"OUTBOX  {outbox.pending} pending · oldest {duration(outbox.oldest_age_s)} "
        f"· {plural(outbox.relays_connected, 'relay')} connected"
    )
    rows = []
    for s in outbox.shards:
        leader = "— none —"
        if s.leader is not None:
            where = s.leader.client_addr or "local"
            leader = f"pid {s.leader.pid} @ {where}  {s.leader.application_name}"
        flag = "✗" if s.oldest_age_s > limit_s else ""
        oldest = duration(s.oldest_age_s) if s.pending else "-"
        rows.append([str(s.shard), leader, str(s.pending), oldest, flag])
    return [head, *table(["SHARD", "LEADER", "PENDING", "OLDEST", ""], rows, {0, 2, 3})]


def _consumers(consumers: ConsumersStatus, limit: int) -> list[str]:
    head = f"CONSUMERS  total lag {consumers.lag}"
    if not consumers.groups:
        return [head, "  no consumer group of this deployment has joined or committed yet"]
    rows = []
    for g in consumers.groups:
        flag = "✗" if g.lag > limit else ""
        first = True
        for p in g.partitions:
            # Group columns only on its first line, so groups stand out as blocks.
            group_cells = [g.consumer, g.state, str(g.members)] if first else ["", "", ""]
            committed = "-" if p.committed is None else str(p.committed)
            rows.append(
                [*group_cells, p.topic, str(p.partition), committed, str(p.end), str(p.lag)]
            )
            first = False
        rows.append(["", "", "", "", "", "", "total", str(g.lag) + (f" {flag}" if flag else "")])
    headers = ["GROUP", "STATE", "MEMBERS", "TOPIC", "PART", "COMMITTED", "END", "LAG"]
    return [head, *table(headers, rows, {2, 4, 5, 6, 7})]


def _dead_letters(dead_letters: DeadLetterStatus) -> list[str]:
    head = f"DEAD LETTERS  {dead_letters.unreplayed} not replayed"
    if not dead_letters.unreplayed_by_topic:
        return [head]
    rows = [[topic, str(n)] for topic, n in dead_letters.unreplayed_by_topic]
    return [head, *table(["TOPIC", "UNREPLAYED"], rows, {1})]


def _findings(title: str, findings: Sequence[Finding]) -> list[str]:
    if not findings:
        return []
    return [title, *(f"  {MARKS[f.severity]} {f.subject}: {f.message}" for f in findings)]


def render(snapshot: StatusSnapshot, settings: Settings) -> str:
    verdict = {"ok": "OK", "breach": "BREACH", "unknown": "UNKNOWN"}[snapshot.verdict]
    lines = [
        f"ConnectIn status  {snapshot.taken_at:%Y-%m-%d %H:%M:%S} UTC  ·  {verdict}  "
        f"({plural(len(snapshot.breaches), 'breach')}, "
        f"{plural(len(snapshot.warnings), 'warning')})",
        "",
    ]
    limits = settings.status
    sections: list[list[str]] = []
    if snapshot.outbox is not None:
        sections.append(_outbox(snapshot.outbox, limits.max_oldest_unpublished_s))
    if snapshot.consumers is not None:
        sections.append(_consumers(snapshot.consumers, limits.max_consumer_lag))
    if snapshot.dead_letters is not None:
        sections.append(_dead_letters(snapshot.dead_letters))
    sections.append(_findings("BREACHES", snapshot.breaches))
    sections.append(_findings("WARNINGS", snapshot.warnings))
    sections.append(_findings_errors(snapshot.errors))
    for section in sections:
        if section:
            lines += [*section, ""]
    lines.append(
        f"limits: oldest unpublished {limits.max_oldest_unpublished_s:g}s, "
        f"consumer lag {limits.max_consumer_lag} per group"
    )
    return "\n".join(lines)


def _findings_errors(errors: Sequence[str]) -> list[str]:
    if not errors:
        return []
    return ["NOT CHECKED (verdict unknown)", *(f"  ? {e}" for e in errors)]


async def _run(settings: Settings, as_json: bool, watch: float | None) -> int:
    engine = create_engine(settings.database, application_name="connectin-status")
    collector = StatusCollector(settings, engine)
    code = 2
    try:
        while True:
            snapshot = await collector.snapshot()
            code = snapshot.exit_code
            if as_json:
                indent = None if watch else 2
                typer.echo(json.dumps(snapshot.to_dict(), indent=indent))
            else:
                screen = render(snapshot, settings)
                # Redraw in place only on a terminal; piped output stays a plain log.
                prefix = CLEAR if watch and sys.stdout.isatty() else ""
                typer.echo(
                    prefix + screen + (f"\n(every {watch:g}s, Ctrl-C to stop)" if watch else "")
                )
            if not watch:
                return code
            await asyncio.sleep(watch)
    except asyncio.CancelledError:
        # Ctrl-C under asyncio.run cancels this task: report the last verdict.
        return code
    finally:
        await engine.dispose()


def status(
    as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts")] = False,
    watch: Annotated[
        float | None,
        typer.Option("--watch", "-w", min=0.5, help="Redraw every N seconds until Ctrl-C"),
    ] = None,
) -> None:
    """Outbox per shard, consumer lag, dead letters. Exit 0 healthy, 1 a threshold
    breached, 2 Postgres or Kafka unreadable: usable as a health probe."""
    settings = Settings.from_env()
    try:
        code = asyncio.run(_run(settings, as_json, watch))
    except KeyboardInterrupt:
        # Interrupted before the first snapshot finished: nothing was checked.
        code = 2
    raise typer.Exit(code)
