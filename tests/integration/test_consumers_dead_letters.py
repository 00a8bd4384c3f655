"""Nothing is silently dropped: records that cannot be decoded are parked at once,
records whose handler keeps failing are parked after max_attempts; both land in
`<topic>.dlq` and dead_letters, the partition moves on, and a replay after the fix
has the effect once (a second replay is a no-op)."""

from __future__ import annotations

import asyncio
import json
import uuid

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner, Result

from cli.dlq import dlq_app
from consumers.dead_letter import dlq_topic
from consumers.handlers import users
from consumers.registry import HandlerContext, HandlerGroup, Registry
from core.dead_letters import list_dead_letters, replay
from core.settings import Settings
from tests.support.consumers import (
    Record,
    consumer_settings,
    create_users,
    ensure_event_topics,
    envelope_record,
    metric,
    produce,
    read_topic,
    rows,
    running_consumers,
    scalar,
    wait_until,
)
from tests.support.processes import settings_env

ANOMALY_KINDS = ("gap", "regression", "late_start")
CONSUMERS = ("users", "projects")


def anomalies(consumer: str) -> float:
    return sum(
        metric("connectin_consumer_sequence_anomalies_total", consumer=consumer, kind=k)
        for k in ANOMALY_KINDS
    )


async def applied_and_parked(engine: AsyncEngine, applied: int, parked: int) -> None:
    """Wait until the consumers applied `applied` events and parked `parked` records."""

    async def settled() -> bool:
        done = await scalar(engine, "SELECT count(*) FROM processed_events")
        in_dead_letters = await scalar(engine, "SELECT count(*) FROM dead_letters")
        return bool(done == applied and in_dead_letters == parked)

    await wait_until(settled, what=f"{applied} events applied and {parked} records parked")


async def test_poison_records_are_parked_and_the_partition_moves_on(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = consumer_settings(settings, "poison")
    topic = s.kafka.topics.user
    (user,) = await create_users(clean_db, 1, "poison")
    key = f"user:{user}".encode()
    first = envelope_record(topic, "user.registered", ("user", user), 1, {}, user_id=user)
    last = envelope_record(topic, "user.login", ("user", user), 2, {}, user_id=user)
    future = json.loads(first.value or b"")
    future.update(event_id=str(uuid.uuid4()), schema_version=99)
    broken_id = str(uuid.uuid4())
    poison = [
        Record(
            topic,
            key,
            b'{"event_type": "user.registered", oops',
            [("event_id", broken_id.encode())],
        ),
        Record(topic, key, json.dumps(future).encode(), [("event_id", future["event_id"])]),
        Record(topic, key, b"\x00\xff binary \x00"),
        # Deeper than the decoder can recurse: its RecursionError used to escape the
        # parse and stop the consumer on every redelivery.
        Record(topic, key, b"[" * 50_000 + b"]" * 50_000),
    ]
    ensure_event_topics(s)
    parked_before = metric("connectin_consumer_dead_lettered_total", consumer="users")
    anomalies_before = anomalies("users")
    # Same key, so all in one partition: the good ones wait behind the poison.
    await produce(s, [first, *poison, last])

    async with running_consumers(s, clean_db):
        await applied_and_parked(clean_db, 2, 4)

    letters = await rows(clean_db, 'SELECT * FROM dead_letters ORDER BY "offset"')
    assert [d.source for d in letters] == ["consumer"] * 4
    assert [d.consumer for d in letters] == ["users"] * 4
    assert {d.topic for d in letters} == {topic}
    assert "not valid JSON" in letters[0].error
    assert "unknown schema_version 99" in letters[1].error
    assert "not valid JSON" in letters[2].error
    assert "nested too deeply" in letters[3].error
    assert str(letters[0].event_id) == broken_id
    assert str(letters[1].event_id) == future["event_id"]
    assert letters[2].event_id is None
    assert letters[3].event_id is None
    assert [d.attempts for d in letters] == [1, 1, 1, 1]
    assert letters[0].value == (poison[0].value or b"").decode()
    assert letters[0].key == key.decode()

    dlq = sorted(
        read_topic(s, dlq_topic(topic)), key=lambda c: int(c.headers["dlq_original_offset"])
    )
    assert [c.value for c in dlq] == [p.value for p in poison]  # the exact bytes
    assert [int(c.headers["dlq_original_offset"]) for c in dlq] == [d.offset for d in letters]
    assert {c.headers["dlq_original_partition"] for c in dlq} == {str(letters[0].partition)}
    assert {c.headers["dlq_consumer"] for c in dlq} == {"users"}
    assert "unknown schema_version" in dlq[1].headers["dlq_error"]
    assert [c.key for c in dlq] == [key] * 4

    assert metric("connectin_consumer_dead_lettered_total", consumer="users") - parked_before == 4
    assert anomalies("users") == anomalies_before
    assert await scalar(
        clean_db, "SELECT last_login_at IS NOT NULL FROM users WHERE id = :u", u=user
    )


class Flaky:
    """A downstream that fails for one event until it is fixed."""

    def __init__(self) -> None:
        self.broken: set[uuid.UUID] = set()
        self.calls: dict[uuid.UUID, int] = {}
        self.applied: list[uuid.UUID] = []
        self.handlers = HandlerGroup(consumer="flaky", topic="user")
        self.handlers.on("user.registered", "user.login")(self.handle)

    async def handle(self, ctx: HandlerContext) -> None:
        event_id = ctx.event.event_id
        self.calls[event_id] = self.calls.get(event_id, 0) + 1
        if event_id in self.broken:
            raise RuntimeError("downstream said no")
        self.applied.append(event_id)


def cli(s: Settings, *args: str) -> Result:
    return CliRunner().invoke(dlq_app, list(args), env=settings_env(s))


async def test_failing_handler_is_retried_parked_and_replayed_once(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = consumer_settings(settings, "replay", max_attempts=3, retry_backoff_ms=20)
    topic = s.kafka.topics.user
    (user,) = await create_users(clean_db, 1, "replay")
    stuck = envelope_record(topic, "user.registered", ("user", user), 1, {}, user_id=user)
    behind = envelope_record(topic, "user.login", ("user", user), 2, {}, user_id=user)
    assert stuck.event_id is not None
    stuck_id = uuid.UUID(stuck.event_id)
    flaky = Flaky()
    flaky.broken.add(stuck_id)
    registry = Registry([flaky.handlers, users.handlers])
    retries_before = metric("connectin_consumer_retries_total", consumer="flaky")
    duplicates_before = metric("connectin_consumer_duplicates_skipped_total", consumer="flaky")
    anomalies_before = anomalies("flaky")
    ensure_event_topics(s)
    await produce(s, [stuck, behind])

    async def parked_and_moved_on() -> bool:
        parked = await scalar(clean_db, "SELECT count(*) FROM dead_letters")
        return bool(parked == 1 and len(flaky.applied) == 1)

    async def notifications() -> int:
        return int(
            await scalar(
                clean_db,
                "SELECT count(*) FROM notifications WHERE source_event_id = :e",
                e=stuck.event_id,
            )
        )

    async def welcomed() -> bool:
        return await notifications() == 1

    async def replay_applied() -> bool:
        return stuck_id in flaky.applied

    # The consumers run in this process and log to stdout, which CliRunner captures
    # while a CLI command runs: held in memory instead, the CLI's JSON stays its own.
    with structlog.testing.capture_logs():
        async with running_consumers(s, clean_db, registry):
            await wait_until(parked_and_moved_on, what="the stuck event parked, the next applied")
            assert flaky.calls[stuck_id] == 3
            retries = metric("connectin_consumer_retries_total", consumer="flaky")
            assert retries - retries_before == 2
            (letter,) = await list_dead_letters(clean_db, topic=topic)
            assert (letter.consumer, letter.attempts) == ("flaky", 3)
            assert "RuntimeError: downstream said no" in letter.error
            assert letter.replayed_at is None
            # The other consumer of the topic was not held up by the flaky one.
            await wait_until(welcomed, what="welcome notification")

            listed = await asyncio.to_thread(cli, s, "list", "--json", "--topic", topic)
            assert listed.exit_code == 0, listed.output
            assert [d["id"] for d in json.loads(listed.stdout)] == [letter.id]
            table = await asyncio.to_thread(cli, s, "list", "--pending")
            assert table.exit_code == 0 and "flaky" in table.stdout
            assert "RuntimeError: downstream said no" in table.stdout

            flaky.broken.clear()  # the fix is deployed
            (result,) = await replay(clean_db, s.kafka)  # every pending one: just this
            assert result.ok and result.id == letter.id
            await wait_until(replay_applied, what="replay applied")
            assert flaky.applied.count(stuck_id) == 1

            # A second replay (from the CLI) reaches both consumers again: both skip it.
            again = await asyncio.to_thread(cli, s, "replay", str(letter.id))
            assert again.exit_code == 0, again.output
            assert f"[1/1] dead letter {letter.id} -> {topic}" in again.stdout

            async def skipped_again() -> bool:
                seen = metric("connectin_consumer_duplicates_skipped_total", consumer="flaky")
                return seen - duplicates_before == 1

            await wait_until(skipped_again, what="second replay skipped as a duplicate")
            nothing = await asyncio.to_thread(cli, s, "replay", "--all")
            assert nothing.exit_code == 0 and "nothing to replay" in nothing.stdout

    assert flaky.applied.count(stuck_id) == 1
    assert await notifications() == 1
    assert (
        await scalar(clean_db, "SELECT count(*) FROM processed_events WHERE consumer = 'flaky'")
        == 2
    )
    (letter,) = await list_dead_letters(clean_db)
    assert letter.replayed_at is not None
    assert await list_dead_letters(clean_db, pending_only=True) == []
    # A replay is behind its key's latest sequence by nature: not an anomaly.
    assert anomalies("flaky") == anomalies_before


async def test_lost_database_connection_is_waited_for_not_parked(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """Postgres going away is not the event's fault: with max_attempts=1 a handler
    error would park the event at once, a lost connection must not."""
    s = consumer_settings(settings, "dbgone", max_attempts=1)
    kills: list[uuid.UUID] = []
    group = HandlerGroup(consumer="dbgone", topic="user")

    @group.on("user.registered")
    async def lose_connection_twice(ctx: HandlerContext) -> None:
        if len(kills) < 2:
            kills.append(ctx.event.event_id)
            # A real connection loss: the server ends this session mid-transaction.
            await ctx.session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    record = envelope_record(s.kafka.topics.user, "user.registered", ("user", 1), 1, {}, user_id=1)
    waits_before = metric("connectin_consumer_database_unavailable_total", consumer="dbgone")
    ensure_event_topics(s)
    await produce(s, [record])

    async def applied() -> bool:
        return bool(
            await scalar(
                clean_db, "SELECT count(*) FROM processed_events WHERE consumer = 'dbgone'"
            )
            == 1
        )

    async with running_consumers(s, clean_db, Registry([group])):
        await wait_until(applied, what="applied after two lost connections")
    assert len(kills) == 2
    assert await scalar(clean_db, "SELECT count(*) FROM dead_letters") == 0
    waits = metric("connectin_consumer_database_unavailable_total", consumer="dbgone")
    assert waits - waits_before == 2


async def test_missing_user_in_the_middle_of_a_batch_parks_only_its_record(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """Notifications and counters are written at the end of a batch, so a user that
    does not exist is found there: the record that named it is parked at once, the
    records around it (same key, same batch) apply once and in order."""
    s = consumer_settings(settings, "batchmissing")
    t = s.kafka.topics
    alice, bob = await create_users(clean_db, 2, "batchmissing")
    missing = 2**40
    welcomes = [
        envelope_record(t.user, "user.registered", ("user", 900), seq, {"user_id": uid})
        for seq, uid in enumerate((alice, missing, bob), start=1)
    ]
    projects = [
        envelope_record(t.project, "project.created", ("project", 900), seq, {"owner_id": uid})
        for seq, uid in enumerate((alice, missing, bob), start=1)
    ]
    retries_before = {c: metric("connectin_consumer_retries_total", consumer=c) for c in CONSUMERS}
    anomalies_before = {c: anomalies(c) for c in CONSUMERS}
    ensure_event_topics(s)
    # Produced before the consumers start: each key's three records arrive in one poll,
    # so each consumer applies them as one batch.
    await produce(s, [*welcomes, *projects])

    async with running_consumers(s, clean_db):
        await applied_and_parked(clean_db, 4, 2)

    letters = await rows(clean_db, "SELECT * FROM dead_letters ORDER BY consumer")
    assert [(d.consumer, str(d.event_id), d.attempts) for d in letters] == [
        ("projects", projects[1].event_id, 1),
        ("users", welcomes[1].event_id, 1),
    ]
    assert all(f"user {missing} does not exist" in d.error for d in letters)
    notified = await rows(
        clean_db, "SELECT user_id, source_event_id::text AS e FROM notifications ORDER BY id"
    )
    assert [(n.user_id, n.e) for n in notified] == [
        (alice, welcomes[0].event_id),
        (bob, welcomes[2].event_id),
    ]
    counts = await rows(clean_db, "SELECT id, projects_count FROM users ORDER BY id")
    assert {c.id: c.projects_count for c in counts} == {alice: 1, bob: 1}
    for consumer in CONSUMERS:
        retries = metric("connectin_consumer_retries_total", consumer=consumer)
        assert retries == retries_before[consumer]
        assert anomalies(consumer) == anomalies_before[consumer]


async def test_data_that_breaks_its_contract_is_parked_with_the_field_named(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """A handler decodes the data into its contract (core/events): a mistyped or
    missing field is permanent, parked at once with the field in the error, and the
    records around it are applied."""
    s = consumer_settings(settings, "contract")
    (alice, bob) = await create_users(clean_db, 2, "contract")
    t = s.kafka.topics
    key = ("project", 901)
    records = [
        envelope_record(t.project, "project.created", key, 1, {"owner_id": alice}),
        envelope_record(t.project, "project.created", key, 2, {"owner_id": str(bob)}),
        envelope_record(t.project, "project.applied", key, 3, {"owner_id": alice}, user_id=bob),
        envelope_record(t.project, "project.created", key, 4, {"owner_id": bob}),
    ]
    ensure_event_topics(s)
    await produce(s, records)

    async with running_consumers(s, clean_db):
        await applied_and_parked(clean_db, 2, 2)

    letters = await rows(clean_db, 'SELECT * FROM dead_letters ORDER BY "offset"')
    assert [str(d.event_id) for d in letters] == [records[1].event_id, records[2].event_id]
    assert [d.attempts for d in letters] == [1, 1]
    assert letters[0].error == (
        "invalid event: project.created data: Expected `int`, got `str` - at `$.owner_id`"
    )
    assert letters[1].error == (
        "invalid event: project.applied data: Object missing required field `project_id`"
    )
    counts = {
        r.id: r.projects_count for r in await rows(clean_db, "SELECT id, projects_count FROM users")
    }
    assert (counts[alice], counts[bob]) == (1, 1)
