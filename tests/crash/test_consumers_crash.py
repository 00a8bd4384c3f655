"""The consumers process killed with SIGKILL again and again while a steady stream of
events keeps arriving (transactions on the real topics, the way the relay writes them),
restarted each time; then one graceful run to the end.

Offsets are committed after the Postgres commits, in batches, so almost every kill
lands between a record's Postgres commit and its offset commit: the record comes back
after the restart and must be skipped. Afterwards every effect exists exactly once
(notifications per event, counters, processed_events), nothing is missing, nothing is
parked and no sequence anomaly was logged. CONNECTIN_CRASH_ITERATIONS sets the number
of kills (default 20), e.g. 200 for a long run. The kill timings and the stream come
from one seed, printed at the start (shown with a failure); CONNECTIN_CRASH_SEED=<seed>
replays them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from core.kafka import group_id
from core.settings import Settings
from tests.support.consumers import (
    Record,
    TxProducer,
    committed_offsets,
    consumer_settings,
    create_users,
    end_offsets,
    ensure_event_topics,
    envelope_record,
    rows,
    scalar,
    wait_until,
)
from tests.support.processes import Process, consumers_process, settings_env

ITERATIONS = int(os.environ.get("CONNECTIN_CRASH_ITERATIONS", "20"))
SEED = int(os.environ.get("CONNECTIN_CRASH_SEED") or random.SystemRandom().randrange(2**31))
MIN_EVENTS = 500
USERS = 30


@dataclass
class Expected:
    """What the stream should leave behind, built while producing it."""

    by_consumer: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    notified: set[str] = field(default_factory=set)
    unread: Counter[int] = field(default_factory=Counter)
    projects: Counter[int] = field(default_factory=Counter)
    last_login: dict[int, datetime] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(len(ids) for ids in self.by_consumer.values())


class Feeder(threading.Thread):
    """Small transactions of mixed events, about 40 events/s, until told to stop."""

    def __init__(self, s: Settings, users: list[int], rng: random.Random) -> None:
        super().__init__(name="crash-feeder", daemon=True)
        self.s = s
        self.rng = rng
        self.users = users
        self.expected = Expected()
        self.stopping = threading.Event()
        self.produced = 0
        self.error: BaseException | None = None
        self._sequences: Counter[str] = Counter()
        self._registered: set[int] = set()
        self._projects: list[tuple[int, int]] = []  # (project id, owner)
        self._ids = itertools.count(1)

    def _next(self, aggregate: tuple[str, int]) -> int:
        self._sequences[f"{aggregate[0]}:{aggregate[1]}"] += 1
        return self._sequences[f"{aggregate[0]}:{aggregate[1]}"]

    def _event(self) -> tuple[str, Record]:
        t = self.s.kafka.topics
        user = self.rng.choice(self.users)
        if user not in self._registered:
            self._registered.add(user)
            record = envelope_record(
                t.user,
                "user.registered",
                ("user", user),
                self._next(("user", user)),
                {},
                user_id=user,
            )
            self.expected.notified.add(str(record.event_id))
            return "users", record
        kind = self.rng.choice(("login", "project", "apply", "message", "message"))
        if kind == "login":
            record = envelope_record(
                t.user, "user.login", ("user", user), self._next(("user", user)), {}, user_id=user
            )
            self.expected.last_login[user] = _timestamp(record)
            return "users", record
        if kind == "project" or not self._projects:
            project = next(self._ids)
            self._projects.append((project, user))
            self.expected.projects[user] += 1
            return "projects", envelope_record(
                t.project,
                "project.created",
                ("project", project),
                self._next(("project", project)),
                {"project_id": project, "owner_id": user},
                user_id=user,
            )
        if kind == "apply":
            project, owner = self.rng.choice(self._projects)
            record = envelope_record(
                t.project,
                "project.applied",
                ("project", project),
                self._next(("project", project)),
                {"project_id": project, "owner_id": owner, "project_title": f"p{project}"},
                user_id=user,
            )
            self.expected.notified.add(str(record.event_id))
            return "projects", record
        recipient = self.rng.choice(self.users)
        message = next(self._ids)
        record = envelope_record(
            t.message,
            "message.sent",
            ("message", message),
            self._next(("message", message)),
            {
                "message_id": message,
                "sender_id": user,
                "recipient_id": recipient,
                "sender_username": f"u{user}",
            },
            user_id=user,
        )
        self.expected.notified.add(str(record.event_id))
        self.expected.unread[recipient] += 1
        return "messages", record

    def send(self, producer: TxProducer, count: int) -> None:
        """`count` events in one Kafka transaction, and what they should leave behind."""
        batch = [self._event() for _ in range(count)]
        producer.send([record for _, record in batch])
        for consumer, record in batch:
            self.expected.by_consumer[consumer].add(str(record.event_id))
        self.produced += len(batch)

    def run(self) -> None:
        try:
            producer = TxProducer(self.s, "crash-feeder")
            while not (self.stopping.is_set() and self.produced >= MIN_EVENTS):
                self.send(producer, self.rng.randint(1, 5))
                time.sleep(self.rng.uniform(0.05, 0.1))
        except BaseException as exc:
            self.error = exc
            raise


def _timestamp(record: Record) -> datetime:
    stamp: str = json.loads(record.value or b"")["timestamp"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _read(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


async def wait_for_line(log: Path, needle: str, count: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _read(log).count(needle) >= count:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_consumers_kill_9_loop_applies_every_effect_exactly_once(
    settings: Settings, clean_db: AsyncEngine, tmp_path: Path
) -> None:
    print(f"crash seed {SEED}: CONNECTIN_CRASH_SEED={SEED} replays these kill points")
    rng = random.Random(SEED)
    s = consumer_settings(settings, "ccrash", max_attempts=5, retry_backoff_ms=50)
    users = await create_users(clean_db, USERS, "ccrash")
    ensure_event_topics(s)
    env = settings_env(s)
    feeder = Feeder(s, users, random.Random(rng.randrange(2**31)))
    feeder.start()
    logs: list[Path] = []
    started = time.monotonic()
    try:
        for i in range(ITERATIONS):
            log = tmp_path / f"consumers-{i}.log"
            logs.append(log)
            process = consumers_process(env, log, instance_id="crash")
            if i % 5 == 4:
                # Now and then while it is still starting up or joining the group.
                await asyncio.sleep(rng.uniform(0.0, 1.2))
            else:
                assigned = await wait_for_line(log, "partitions assigned", 3, 20)
                assert assigned or not process.alive(), f"no assignment in {log}"
                assert process.alive(), _read(log)[-3000:]
                await asyncio.sleep(rng.uniform(0.05, 1.5))
            process.kill()
        feeder.stopping.set()
        await asyncio.to_thread(feeder.join, 120)
        assert feeder.error is None, repr(feeder.error)
        expected = feeder.expected
        assert expected.total == feeder.produced >= MIN_EVENTS
        killing_s = time.monotonic() - started

        final_log = tmp_path / "consumers-final.log"
        logs.append(final_log)
        final = consumers_process(env, final_log, instance_id="crash")

        async def all_applied() -> bool:
            return bool(
                await scalar(clean_db, "SELECT count(*) FROM processed_events") >= expected.total
            )

        await wait_until(all_applied, timeout_s=120, what=f"{expected.total} events applied")
        await asyncio.sleep(1.0)  # let it commit its offsets and find nothing more
        assert final.terminate(30) == 0, _read(final_log)[-3000:]
    finally:
        feeder.stopping.set()

    text = "\n".join(_read(p) for p in logs)
    assert '"received SIGTERM"' in _read(final_log)
    await assert_every_effect_once(clean_db, s, expected, users)
    assert '"sequence anomaly"' not in text
    # The kills did land between Postgres commits and offset commits.
    redelivered = text.count('"duplicate event skipped"')
    assert redelivered > 0
    print(
        f"\n{ITERATIONS} kills in {killing_s:.1f}s, {expected.total} events, "
        f"{redelivered} redeliveries skipped as duplicates"
    )


async def assert_every_effect_once(
    clean_db: AsyncEngine, s: Settings, expected: Expected, users: list[int]
) -> None:
    """Every effect once, nothing missing, nothing extra, nothing parked, and the
    graceful stop committed every offset it applied."""
    for consumer, ids in expected.by_consumer.items():
        done = await rows(
            clean_db,
            "SELECT event_id::text AS id FROM processed_events WHERE consumer = :c",
            c=consumer,
        )
        assert {r.id for r in done} == ids, consumer
    per_event = await rows(
        clean_db, "SELECT source_event_id::text AS id, count(*) AS n FROM notifications GROUP BY 1"
    )
    assert {r.id for r in per_event} == expected.notified
    assert {r.n for r in per_event} == {1}
    state = {
        r.id: r
        for r in await rows(
            clean_db, "SELECT id, unread_messages, projects_count, last_login_at FROM users"
        )
    }
    for user in users:
        assert state[user].unread_messages == expected.unread[user], user
        assert state[user].projects_count == expected.projects[user], user
        assert state[user].last_login_at == expected.last_login.get(user), user
    assert await scalar(clean_db, "SELECT count(*) FROM dead_letters") == 0
    for consumer, topic in (
        ("users", s.kafka.topics.user),
        ("projects", s.kafka.topics.project),
        ("messages", s.kafka.topics.message),
    ):
        assert committed_offsets(s, group_id(s.kafka, consumer), topic) == end_offsets(s, topic)


MID_BATCH_RUNS = 6
MID_BATCH_BURST = 300
# Per record after the first of a batch: a slice of ~50 records dies about 40 % of
# the time, so some batches commit between the kills and some die half applied.
MID_BATCH_PROBABILITY = 0.01


async def test_kill_9_in_the_middle_of_a_batch_applies_every_effect_exactly_once(
    settings: Settings, clean_db: AsyncEngine, tmp_path: Path
) -> None:
    """A burst arrives before each start, so polls return many records per partition
    and each partition's slice is one Postgres transaction; the process SIGKILLs
    itself after a record's handlers ran in the middle of such a batch, before the
    commit. The half-applied batch must leave nothing, and the others nothing twice."""
    s = consumer_settings(settings, "cmidbatch", max_attempts=5, retry_backoff_ms=50)
    users = await create_users(clean_db, USERS, "cmidbatch")
    ensure_event_topics(s)
    print(f"crash seed {SEED}: CONNECTIN_CRASH_SEED={SEED} replays the stream")
    # Not started: its events and expectations only.
    feeder = Feeder(s, users, random.Random(SEED))
    producer = await asyncio.to_thread(TxProducer, s, "midbatch-feeder")
    env = settings_env(s, CONSUMER_FAILPOINT=f"mid_batch:{MID_BATCH_PROBABILITY}")
    expected = feeder.expected

    async def all_applied() -> bool:
        return bool(
            await scalar(clean_db, "SELECT count(*) FROM processed_events") >= expected.total
        )

    logs: list[Path] = []
    for i in range(MID_BATCH_RUNS):
        await asyncio.to_thread(feeder.send, producer, MID_BATCH_BURST)
        log = tmp_path / f"consumers-{i}.log"
        logs.append(log)
        process = consumers_process(env, log, instance_id="midbatch")

        async def ended_or_caught_up(process: Process = process) -> bool:
            return not process.alive() or await all_applied()

        await wait_until(ended_or_caught_up, timeout_s=60, what="a mid-batch kill or the end")
        if process.alive():
            assert process.terminate(30) == 0, _read(log)[-3000:]
        else:
            process.kill()  # reaps it and closes its log

    final_log = tmp_path / "consumers-final.log"
    logs.append(final_log)
    final = consumers_process(settings_env(s), final_log, instance_id="midbatch")
    await wait_until(all_applied, timeout_s=120, what=f"{expected.total} events applied")
    await asyncio.sleep(1.0)  # let it commit its offsets and find nothing more
    assert final.terminate(30) == 0, _read(final_log)[-3000:]

    text = "\n".join(_read(p) for p in logs)
    kills = [
        json.loads(line)
        for line in text.splitlines()
        if '"failpoint reached, killing the process"' in line
    ]
    assert kills, "no run was killed in the middle of a batch"
    assert all(0 < k["index"] < k["batch_size"] - 1 for k in kills)
    await assert_every_effect_once(clean_db, s, expected, users)
    assert '"sequence anomaly"' not in text
    print(
        f"\n{len(kills)} kills mid-batch (batch sizes {sorted(k['batch_size'] for k in kills)}),"
        f" {expected.total} events"
    )
