"""Frozen relays: a relay stops making progress with its connections open (SIGSTOP).
Another relay must take its shards within a bound set by RELAY_LEASE_TIMEOUT_MS, and
when the frozen one wakes it must be fenced: every event exactly once in
read_committed, per-key sequences 1..n."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.outbox_store import OutboxRow
from core.settings import Settings
from relay.producer import ProducerFenced, ShardProducer
from tests.support.consumers import wait_until
from tests.support.kafka import (
    assert_events_exactly_once,
    isolate,
    shards_by_pid,
    wait_all_published,
    write_events,
    writing,
)
from tests.support.processes import Process, settings_env

LEASE_TIMEOUT_MS = 3000
LOCK_CHECK_MS = 300
# The contract is "lease timeout + a couple of checks"; the margin absorbs a loaded
# machine, and without eviction the shards would never move at all.
TAKEOVER_BOUND_S = LEASE_TIMEOUT_MS / 1000 + 20


def frozen_settings(settings: Settings, tag: str) -> Settings:
    s = isolate(settings, tag)
    return replace(
        s,
        relay=replace(
            s.relay,
            batch_size=50,
            lock_check_ms=LOCK_CHECK_MS,
            lease_timeout_ms=LEASE_TIMEOUT_MS,
        ),
    )


def local_ports(pid: int) -> set[int]:
    """TCP ports of the sockets process `pid` has open (its Postgres connections)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def backends_of(engine: AsyncEngine, pid: int) -> list[int]:
    ports = sorted(local_ports(pid))
    async with engine.connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[]) "
            "AND datname = current_database()",
            (ports,),
        )
        return [int(r[0]) for r in rows]


async def run_frozen(settings: Settings, engine: AsyncEngine, tag: str, *, cut_off: bool) -> None:
    s = frozen_settings(settings, tag)
    relays = [Process("relay", settings_env(s)), Process("relay", settings_env(s))]
    frozen: Process | None = None
    try:
        async with writing(engine, s) as ids:

            async def split() -> bool:
                return sorted((await shards_by_pid(engine, s)).values()) == [2, 2]

            await wait_until(split, 60, "shards split 2/2")
            counts = await shards_by_pid(engine, s)
            held = {
                r.pid: sum(counts.get(b, 0) for b in await backends_of(engine, r.pid))
                for r in relays
            }
            frozen = max(relays, key=lambda r: held[r.pid])
            live = next(r for r in relays if r is not frozen)
            assert held[frozen.pid] == 2, held
            frozen_backends = await backends_of(engine, frozen.pid)
            frozen.popen.send_signal(signal.SIGSTOP)
            if cut_off:
                async with engine.connect() as conn:
                    await conn.exec_driver_sql(
                        "SELECT pg_terminate_backend(pid, 5000) FROM unnest($1::int[]) AS pid",
                        (frozen_backends,),
                    )

            async def live_leads_all() -> bool:
                counts = await shards_by_pid(engine, s)
                mine = await backends_of(engine, live.pid)
                return sum(counts.get(b, 0) for b in mine) == s.relay.shards

            took = await wait_until(
                live_leads_all, TAKEOVER_BOUND_S, "the live relay leads every shard"
            )
            print(f"shards moved {took:.1f} s after SIGSTOP (lease timeout {LEASE_TIMEOUT_MS} ms)")
            # Events written while the frozen relay is stopped are published by the other.
            before = len(ids)

            async def more_written() -> bool:
                return len(ids) >= before + 100

            await wait_until(more_written, 60, "writes go on")
            frozen.popen.send_signal(signal.SIGCONT)

            async def frozen_lost_its_lease() -> bool:
                text = frozen.log_path.read_text(errors="replace")
                return "lease connection lost" in text

            await wait_until(
                frozen_lost_its_lease, 60, "the thawed relay noticed it lost its leases"
            )
        await wait_all_published(engine, timeout_s=120)
    finally:
        if frozen is not None and frozen.alive():
            frozen.popen.send_signal(signal.SIGCONT)
        codes = [r.terminate() for r in relays]
    assert codes == [0, 0], "\n".join(r.log_tail() for r in relays)
    live_log = live.log_path.read_text()
    if not cut_off:
        assert "frozen relay evicted" in live_log, live.log_tail()
    await assert_events_exactly_once(s, set(ids))


async def test_frozen_relay_loses_its_shards_and_is_fenced_when_it_wakes(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    await run_frozen(settings, clean_db, "frozen", cut_off=False)


async def test_frozen_relay_cut_off_from_postgres_is_fenced_when_it_wakes(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    await run_frozen(settings, clean_db, "cutoff", cut_off=True)


async def test_a_live_zombie_producer_is_fenced_by_the_new_leader(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """A leader's producer that is still alive (its relay frozen, then thawed) tries to
    commit after a relay took its shard: init_transactions() of the new leader fenced
    it, so its commit fails and nothing of its batch is visible in read_committed."""
    s = frozen_settings(settings, "zombie")
    zombie = ShardProducer(s.kafka, s.relay, shard=0)
    await asyncio.to_thread(zombie.init_transactions)
    relay = Process("relay", settings_env(s))
    try:

        async def relay_leads_everything() -> bool:
            return sorted((await shards_by_pid(clean_db, s)).values()) == [s.relay.shards]

        await wait_until(relay_leads_everything, 60, "the relay leads every shard")
        # Shard 0 has events and they were published: the relay's shard 0 worker ran
        # init_transactions() for the zombie's transactional id after the zombie did.
        ids = await write_events(clean_db, s, 40, keys=20)
        await wait_all_published(clean_db)
        async with clean_db.connect() as conn:
            on_shard_0 = await conn.exec_driver_sql("SELECT count(*) FROM outbox WHERE shard = 0")
            assert on_shard_0.scalar_one() > 0
        value = json.dumps({"event_id": str(uuid.uuid4()), "event_type": "zombie"})
        row = OutboxRow(
            id=10**9,
            event_id="zombie",
            topic=s.kafka.topics.user,
            key="agg:zombie",
            value=value,
            headers={},
            chars=len(value),
        )
        with pytest.raises(ProducerFenced, match=r"(?i)fenced"):
            await asyncio.to_thread(zombie.publish, [row])
    finally:
        await asyncio.to_thread(zombie.close)
        assert relay.terminate() == 0, relay.log_tail()
    await assert_events_exactly_once(s, set(ids))
