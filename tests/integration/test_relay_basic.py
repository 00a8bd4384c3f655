"""The relay publishes every outbox row once, in per-key order, with its receipt."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import replace

from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, not in __all__
    AdminClient,
    ConfigResource,
)
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core.db import drop_database, recreate_database
from core.kafka import admin_config
from core.outbox import NewEvent, enqueue
from core.settings import Settings
from tests.support.consumers import scalar, wait_until
from tests.support.kafka import (
    assert_exactly_once_in_order,
    isolate,
    read_committed,
    wait_all_published,
    write_events,
)
from tests.support.processes import Process, settings_env
from tests.support.relay import running_relay


def all_topics(settings: Settings) -> list[str]:
    return list(settings.kafka.topics.event_topics)


async def test_publishes_each_event_once_in_key_order(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = isolate(settings, "basic")
    ids = await write_events(clean_db, s, 500, keys=20, per_transaction=5)
    async with running_relay(s, clean_db):
        await wait_all_published(clean_db)
    published = await asyncio.to_thread(read_committed, s, all_topics(s))
    assert_exactly_once_in_order(published, set(ids))
    async with clean_db.connect() as conn:
        receipts = (
            await conn.exec_driver_sql(
                "SELECT count(*) FROM outbox WHERE receipt ? 'partition' AND receipt ? 'offset'"
            )
        ).scalar_one()
    assert receipts == 500


async def test_headers_carry_cloudevents_attributes(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = isolate(settings, "headers")
    ids = await write_events(clean_db, s, 3, keys=1)
    async with running_relay(s, clean_db):
        await wait_all_published(clean_db)
    published = await asyncio.to_thread(read_committed, s, all_topics(s))
    assert {p.envelope["event_id"] for p in published} == set(ids)
    for p in published:
        h = p.headers
        assert h["event_id"] == h["ce_id"] == p.envelope["event_id"]
        assert h["event_type"] == h["ce_type"] == "test.happened"
        assert h["ce_specversion"] == "1.0" and h["content-type"] == "application/json"
        assert h["ce_source"] == "/connectin/agg" and h["ce_time"].endswith("Z")
        assert p.key == f"agg:{p.envelope['aggregate_id']}"


async def test_unpublishable_row_is_dead_lettered_without_blocking_its_shard(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """An event over the size limit goes to dead_letters with the reason; the events
    behind it on the same key and shard are still published."""
    s = isolate(settings, "oversize")
    s = replace(s, relay=replace(s.relay, max_message_bytes=4096, shards=1))
    topic = s.kafka.topics.user
    sessions = async_sessionmaker(clean_db)
    events = [
        NewEvent(topic, "test.small", "agg", "k", {"n": 1}),
        NewEvent(topic, "test.huge", "agg", "k", {"blob": "x" * 10_000}),
        NewEvent(topic, "test.small", "agg", "k", {"n": 3}),
        # Under the limit in characters, over it in UTF-8 bytes: the limit is bytes.
        NewEvent(topic, "test.wide", "agg", "k", {"blob": "é€" * 1_200}),
        NewEvent(topic, "test.small", "agg", "k", {"n": 5}),
    ]
    async with sessions.begin() as session:
        for event in events:
            await enqueue(session, event, shards=1)
    async with running_relay(s, clean_db):
        await wait_all_published(clean_db)
    published = await asyncio.to_thread(read_committed, s, all_topics(s))
    assert [p.envelope["data"].get("n") for p in published] == [1, 3, 5]
    async with clean_db.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT source, event_id::text, topic, error FROM dead_letters ORDER BY id")
            )
        ).all()
    assert len(rows) == 2
    for (source, event_id, dl_topic, error), parked in zip(
        rows, (events[1], events[3]), strict=True
    ):
        assert (source, event_id, dl_topic) == ("relay", str(parked.event_id), topic)
        assert "exceeds limit 4096" in error


async def test_topics_are_created_with_configured_shape(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = isolate(settings, "topics")
    async with running_relay(s, clean_db) as relay:
        for _ in range(100):
            if relay.led_shards:
                break
            await asyncio.sleep(0.1)
    admin = AdminClient(admin_config(s.kafka.bootstrap_servers))
    metadata = admin.list_topics(timeout=10).topics
    for name in s.kafka.topics.event_topics:
        assert len(metadata[name].partitions) == s.kafka.topics.partitions
    checkpoint = s.kafka.topics.checkpoint
    assert len(metadata[checkpoint].partitions) == s.relay.shards
    resource = ConfigResource(ConfigResource.Type.TOPIC, checkpoint)
    config = admin.describe_configs([resource])[resource].result()
    assert config["cleanup.policy"].value == "compact"


async def test_raising_shards_grows_the_checkpoint_topic_and_keeps_event_topics(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """Checkpoints are placed by shard number, so a relay started with more shards adds
    checkpoint partitions (the new shards have no checkpoint yet) and publishes every
    shard; event topics, placed by key hash, keep their partitions."""
    s = isolate(settings, "grow")
    two = replace(s, relay=replace(s.relay, shards=2))
    four = replace(s, relay=replace(s.relay, shards=4))
    early = await write_events(clean_db, two, 20, keys=10)
    async with running_relay(two, clean_db):
        await wait_all_published(clean_db)
    late = await write_events(clean_db, four, 40, keys=20)
    async with running_relay(four, clean_db) as relay:
        await wait_all_published(clean_db)
        assert relay.led_shards == {0, 1, 2, 3}
    metadata = AdminClient(admin_config(s.kafka.bootstrap_servers)).list_topics(timeout=10).topics
    assert len(metadata[s.kafka.topics.checkpoint].partitions) == 4
    for name in s.kafka.topics.event_topics:
        assert len(metadata[name].partitions) == s.kafka.topics.partitions
    events = await asyncio.to_thread(read_committed, s, all_topics(s))
    assert_exactly_once_in_order(events, {*early, *late})


async def test_sigterm_with_a_batch_in_flight_finishes_it_and_exits_cleanly(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """The relay sends itself SIGTERM half-way through producing a batch (failpoint
    mid_batch with SIGTERM), so the stop provably arrives with that batch in flight.
    It must commit and mark that batch, start no other, and exit 0 saying why: at exit
    what is in Kafka is exactly what Postgres marked published."""
    s = isolate(settings, "sigterm")
    s = replace(s, relay=replace(s.relay, batch_size=200))
    ids = await write_events(clean_db, s, 3000, keys=50, per_transaction=100)
    relay = Process("relay", settings_env(s, RELAY_FAILPOINT="mid_batch:1:SIGTERM"))
    code = await asyncio.to_thread(relay.popen.wait, 60)
    assert code == 0, relay.log_tail()
    log = relay.log_path.read_text()
    assert '"reason": "received SIGTERM"' in log and "relay stopped" in log
    async with clean_db.connect() as conn:
        marked = {
            str(r[0]): int(r[1])
            for r in await conn.execute(
                text("SELECT event_id, shard FROM outbox WHERE published_at IS NOT NULL")
            )
        }
    per_shard = [list(marked.values()).count(shard) for shard in range(s.relay.shards)]
    # The batch in flight was finished (at least one shard's first batch is marked),
    # and no shard went on to a second batch after the stop.
    assert max(per_shard) > 0 and all(n <= 200 for n in per_shard), per_shard
    in_kafka = await asyncio.to_thread(read_committed, s, all_topics(s))
    assert {p.envelope["event_id"] for p in in_kafka} == set(marked)
    # A second relay does the rest, and nothing is repeated.
    async with running_relay(s, clean_db):
        await wait_all_published(clean_db)
    published = await asyncio.to_thread(read_committed, s, all_topics(s))
    assert_exactly_once_in_order(published, set(ids))


async def test_relay_refuses_to_strand_rows_in_shards_it_would_never_lead(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """RELAY_SHARDS lowered while rows are pending: the relay exits 2 before leading
    anything, naming the shards, their rows and the setting that drains them. That
    setting then publishes every row exactly once, in key order."""
    s = isolate(settings, "stranded")
    wide = replace(s, relay=replace(s.relay, shards=4))
    ids = await write_events(clean_db, wide, 60, keys=30)
    async with clean_db.connect() as conn:
        per_shard: dict[int, int] = dict(
            (await conn.execute(text("SELECT shard, count(*) FROM outbox GROUP BY shard"))).all()
        )
    assert set(per_shard) == {0, 1, 2, 3}, "the keys spread over all four shards"
    narrow = replace(s, relay=replace(s.relay, shards=2))
    relay = Process("relay", settings_env(narrow))
    code = await asyncio.to_thread(relay.popen.wait, 60)
    log = relay.log_tail()
    assert code == 2, log
    assert "relay cannot start" in log, log
    assert f"shard 2: {per_shard[2]}, shard 3: {per_shard[3]}" in log, log
    assert "run the relays with RELAY_SHARDS=4, with writes paused" in log, log
    async with clean_db.connect() as conn:
        published = await conn.scalar(
            text("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
        )
    assert published == 0, "a relay that refuses to start publishes nothing, not even shard 0"

    async with running_relay(wide, clean_db):
        await wait_all_published(clean_db)
    events = await asyncio.to_thread(read_committed, s, all_topics(s))
    assert_exactly_once_in_order(events, set(ids))


async def test_permanent_database_error_at_start_up_stops_the_relay_cleanly(
    settings: Settings,
) -> None:
    """A database without the schema (migrations not run): the relay's first query
    fails for good, so it exits 1 with the reason and the SQLSTATE, not a traceback."""
    name = f"connectin_noschema_{uuid.uuid4().hex[:8]}"
    database = await recreate_database(settings.database, name)
    try:
        s = replace(isolate(settings, "noschema"), database=database)
        relay = Process("relay", settings_env(s))
        code = await asyncio.to_thread(relay.popen.wait, 60)
        log = relay.log_tail()
    finally:
        await drop_database(settings.database, name)
    assert code == 1, log
    assert "start-up check of the outbox's shards failed: permanent database error" in log, log
    assert "42P01" in log, log
    assert "permanent database error at start-up" in log, log
    assert "Traceback" not in log, log


async def test_rows_written_for_more_shards_show_in_the_backlog_gauges(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """A writer configured with more shards than the running relay: the relay goes on
    publishing its shards, and the rows it will never lead show in its pending gauge,
    so the oldest-unpublished alert fires on them."""
    s = isolate(settings, "stranded-gauge")
    s = replace(s, relay=replace(s.relay, shards=1))
    wide = replace(s, relay=replace(s.relay, shards=4))
    async with running_relay(s, clean_db) as relay:
        # Written after the start-up check, as by a writer configured differently.
        async def leads() -> bool:
            return bool(relay.led_shards)

        await wait_until(leads, 30, "the relay leads its shard")
        assert relay.led_shards == {0}
        ids = await write_events(clean_db, wide, 40, keys=20)
        async with clean_db.connect() as conn:
            per_shard: dict[int, int] = dict(
                (
                    await conn.execute(text("SELECT shard, count(*) FROM outbox GROUP BY shard"))
                ).all()
            )
        assert per_shard.keys() > {0}, "some keys fall in shards past the relay's one"

        def gauge(shard: int) -> float | None:
            return REGISTRY.get_sample_value(
                "connectin_outbox_pending_events", {"shard": str(shard)}
            )

        async def own_shard_published() -> bool:
            left = await scalar(
                clean_db, "SELECT count(*) FROM outbox WHERE shard = 0 AND published_at IS NULL"
            )
            return bool(left == 0)

        async def gauges_settled() -> bool:
            stranded = all(gauge(shard) == n for shard, n in per_shard.items() if shard)
            return gauge(0) == 0 and stranded

        await wait_until(
            own_shard_published, 60, "the relay's own shard published beside the stranded rows"
        )
        await wait_until(gauges_settled, 10, "the pending gauges show the stranded rows")
        assert {shard: gauge(shard) for shard in per_shard if shard} == {
            shard: n for shard, n in per_shard.items() if shard
        }
        assert gauge(0) == 0
    events = await asyncio.to_thread(read_committed, s, all_topics(s))
    assert len(events) == per_shard[0]
    assert {e.envelope["event_id"] for e in events} < set(ids)


async def test_stopping_leaves_no_query_of_its_own_behind(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """A stop that lands while the relay's background queries run (the pending watch
    polls every few milliseconds here) must not cut one off mid-protocol: such a
    connection stays `active` with its transaction open and blocks any TRUNCATE of the
    outbox for good. The relay shares the test's engine, as the in-process tests do."""
    s = replace(
        isolate(settings, "stopquiet"),
        relay=replace(settings.relay, idle_poll_ms=5, lock_check_ms=50),
    )
    rng = random.Random(13)
    for _ in range(15):
        async with running_relay(s, clean_db):
            await asyncio.sleep(rng.uniform(0.05, 0.4))
        async with clean_db.connect() as conn:
            busy = (
                await conn.execute(
                    text(
                        "SELECT pid, state, wait_event, left(query, 60) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        " AND (state <> 'idle' OR xact_start IS NOT NULL)"
                    )
                )
            ).all()
        assert busy == [], busy
