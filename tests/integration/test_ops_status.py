"""The status snapshot against the database, and `connectin status` as a health probe:
its numbers, its verdicts and its exit codes."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import typer
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner, Result

from cli.status import status
from core.settings import Settings
from core.status import StatusCollector
from core.status.verdict import duration
from tests.support.ops import (
    add_dead_letter,
    add_outbox_rows,
    db_backlog,
    fake_relay,
    status_env,
    with_thresholds,
)
from tests.support.processes import settings_env


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(status)
    return app


async def run_cli(settings: Settings, *args: str) -> Result:
    # In a thread: the command runs its own event loop (asyncio.run).
    return await asyncio.to_thread(
        CliRunner().invoke, _cli(), list(args), env=status_env(settings), catch_exceptions=False
    )


async def _backlog(engine: AsyncEngine, settings: Settings) -> None:
    """Shard 0: 3 events 2 minutes old; shard 2: 2 fresh; shard 1: only published rows."""
    topic = settings.kafka.topics.user
    await add_outbox_rows(engine, topic, shard=0, count=3, age_s=120)
    await add_outbox_rows(engine, topic, shard=2, count=2, age_s=1)
    await add_outbox_rows(engine, topic, shard=1, count=4, age_s=300, published=True)


async def test_snapshot_matches_the_database_and_breaches_on_old_events(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = with_thresholds(settings, max_oldest_s=60)
    await _backlog(clean_db, s)
    await add_dead_letter(clean_db, s.kafka.topics.user)
    await add_dead_letter(clean_db, s.kafka.topics.user)
    await add_dead_letter(clean_db, s.kafka.topics.project)
    await add_dead_letter(clean_db, s.kafka.topics.project, replayed=True)

    snapshot = await StatusCollector(s, clean_db).snapshot()
    expected = await db_backlog(clean_db)

    assert snapshot.errors == ()
    assert snapshot.outbox is not None
    shown = {sh.shard: sh for sh in snapshot.outbox.shards}
    assert sorted(shown) == list(range(s.relay.shards)), "every configured shard is listed"
    for shard, row in shown.items():
        pending, age = expected.get(shard, (0, 0.0))
        assert row.pending == pending, f"shard {shard}"
        assert row.oldest_age_s == pytest.approx(age, abs=2), f"shard {shard}"
    assert snapshot.outbox.pending == 5
    assert 119 <= snapshot.outbox.oldest_age_s < 125

    assert snapshot.dead_letters is not None
    assert dict(snapshot.dead_letters.unreplayed_by_topic) == {
        s.kafka.topics.user: 2,
        s.kafka.topics.project: 1,
    }

    assert [(b.kind, b.subject) for b in snapshot.breaches] == [("oldest_unpublished", "shard 0")]
    assert snapshot.verdict == "breach" and snapshot.exit_code == 1
    kinds = {(w.kind, w.subject) for w in snapshot.warnings}
    assert ("no_leader", "shard 0") in kinds
    assert ("dead_letters", f"topic {s.kafka.topics.user}") in kinds


async def test_higher_limit_means_healthy(settings: Settings, clean_db: AsyncEngine) -> None:
    s = with_thresholds(settings, max_oldest_s=600)
    await _backlog(clean_db, s)
    snapshot = await StatusCollector(s, clean_db).snapshot()
    assert snapshot.breaches == ()
    assert snapshot.verdict == "ok" and snapshot.exit_code == 0


async def test_leaders_are_found_from_the_relays_advisory_locks(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = with_thresholds(settings)
    async with fake_relay(s, [1, 3]) as pid:
        outbox = await StatusCollector(s, clean_db).outbox()
    leaders = {sh.shard: sh.leader for sh in outbox.shards}
    assert leaders[0] is None and leaders[2] is None
    for shard in (1, 3):
        leader = leaders[shard]
        assert leader is not None
        assert leader.pid == pid
        assert leader.application_name == f"connectin-relay:{s.kafka.transactional_id_prefix}"
        assert leader.client_addr in {"127.0.0.1", "::1", None}
    assert outbox.relays_connected == 1


async def test_another_deployments_relay_is_not_our_leader(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = with_thresholds(settings)
    other = replace(s, kafka=replace(s.kafka, transactional_id_prefix="someone-else"))
    async with fake_relay(other, [0]):
        outbox = await StatusCollector(s, clean_db).outbox()
    assert all(sh.leader is None for sh in outbox.shards)
    assert outbox.relays_connected == 0


async def test_cli_exit_code_follows_the_thresholds(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    await _backlog(clean_db, settings)

    breached = await run_cli(with_thresholds(settings, max_oldest_s=60))
    assert breached.exit_code == 1, breached.output
    assert "BREACH" in breached.output
    assert "oldest unpublished event is" in breached.output

    healthy = await run_cli(with_thresholds(settings, max_oldest_s=600))
    assert healthy.exit_code == 0, healthy.output
    assert "OK" in healthy.output


async def test_cli_screen_shows_a_row_per_shard(settings: Settings, clean_db: AsyncEngine) -> None:
    s = with_thresholds(settings, max_oldest_s=60)
    await _backlog(clean_db, s)
    async with fake_relay(s, [2]) as pid:
        result = await run_cli(s)
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["SHARD", "LEADER"])
    rows = [line.split() for line in lines[header + 1 : header + 1 + s.relay.shards]]
    assert [r[0] for r in rows] == [str(n) for n in range(s.relay.shards)]
    assert rows[0][-2:] == ["2m00s", "✗"] or rows[0][-2:] == ["2m01s", "✗"]
    assert rows[0][-3] == "3"
    assert f"pid {pid}" in " ".join(rows[2])
    # Columns line up: every shard row's PENDING column ends where the header's does.
    pending_end = lines[header].index("PENDING") + len("PENDING")
    for line in lines[header + 1 : header + 1 + s.relay.shards]:
        assert line[pending_end - 1].isdigit(), line


async def test_cli_json_parses_and_carries_the_verdict(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = with_thresholds(settings, max_oldest_s=60)
    await _backlog(clean_db, s)
    result = await run_cli(s, "--json")
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["verdict"] == "breach"
    assert body["outbox"]["pending"] == 5
    assert [sh["pending"] for sh in body["outbox"]["shards"]] == [3, 0, 2, 0]
    assert body["breaches"][0]["kind"] == "oldest_unpublished"
    assert body["thresholds"]["max_oldest_unpublished_s"] == 60


async def test_unreachable_postgres_is_exit_2_not_a_crash(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    gone = replace(
        settings,
        database=replace(
            settings.database,
            url="postgresql+asyncpg://connectin:connectin@127.0.0.1:1/connectin",
        ),
    )
    result = await run_cli(gone)
    assert result.exit_code == 2, result.output
    assert "NOT CHECKED" in result.output and "postgres:" in result.output


def test_durations_read_at_a_glance() -> None:
    assert [duration(s) for s in (0, 59.9, 61, 3599, 3600 * 5 + 120, 86400 * 2 + 7200)] == [
        "0s",
        "59s",
        "1m01s",
        "59m59s",
        "5h02m",
        "2d2h",
    ]


async def test_watch_redraws_until_interrupted(settings: Settings, clean_db: AsyncEngine) -> None:
    """`--watch` keeps taking snapshots: run it briefly with --json (one line each)."""
    s = with_thresholds(settings, max_oldest_s=600)
    # Python dumps every thread's stack on SIGABRT: a stop that hangs says where.
    env = {**settings_env(s, **status_env(s)), "PYTHONFAULTHANDLER": "1"}
    # Ctrl-C reaches a command in a terminal's foreground; a test run started in the
    # background of a non-interactive shell (`make test &`) passes SIGINT on ignored, and
    # Python then never turns it into KeyboardInterrupt. Restore what a terminal gives.
    code = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from cli.status import status; import typer; typer.run(status)"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        "--json",
        "--watch",
        "0.5",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    # Interrupt after the second snapshot, however long a loaded machine takes to draw
    # them (a fixed sleep failed at load average 23).
    first_two = [await asyncio.wait_for(proc.stdout.readline(), 60) for _ in range(2)]
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    # Not cancelled on a timeout: what it read counts what was drawn after the SIGINT.
    output = asyncio.ensure_future(proc.communicate())
    finished, _ = await asyncio.wait({output}, timeout=30)
    if not finished:
        # Still drawing (the interrupt never reached the loop) or stuck on the way out?
        status_text = await asyncio.to_thread(Path(f"/proc/{proc.pid}/status").read_text)
        signals = "".join(line for line in status_text.splitlines(True) if line.startswith("Sig"))
        proc.send_signal(signal.SIGABRT)
        out, err = await output
        pytest.fail(
            f"status --watch still running 30 s after SIGINT, {len(out.splitlines())}"
            f" snapshots printed since; {signals}{err.decode()}"
        )
    out, err = output.result()
    lines = [*first_two, *out.splitlines()]
    snapshots = [json.loads(line) for line in lines if line.strip()]
    assert len(snapshots) >= 2, err.decode()
    assert snapshots[-1]["verdict"] == "ok"
    assert proc.returncode == 0, err.decode()
