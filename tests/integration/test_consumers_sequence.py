"""Per-key sequence numbers out of line are counted (and never block the event)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from tests.support.consumers import (
    Record,
    consumer_settings,
    create_users,
    ensure_event_topics,
    envelope_record,
    metric,
    produce,
    running_consumers,
    scalar,
    wait_until,
)


def anomaly(kind: str) -> float:
    return metric("connectin_consumer_sequence_anomalies_total", consumer="users", kind=kind)


async def test_gaps_regressions_and_late_starts_are_counted(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = consumer_settings(settings, "seq")
    topic = s.kafka.topics.user
    a, b = await create_users(clean_db, 2, "seq")

    def login(user: int, sequence: int) -> Record:
        return envelope_record(topic, "user.login", ("user", user), sequence, {}, user_id=user)

    records = [
        envelope_record(topic, "user.registered", ("user", a), 1, {}, user_id=a),
        login(a, 2),
        login(a, 4),  # 3 is missing: a gap
        login(a, 3),  # arrives after 4: a regression
        login(b, 5),  # the first this consumer sees of b is not 1
    ]
    before = {k: anomaly(k) for k in ("gap", "regression", "late_start")}
    ensure_event_topics(s)
    await produce(s, records)

    async def all_applied() -> bool:
        return bool(await scalar(clean_db, "SELECT count(*) FROM processed_events") == 5)

    async with running_consumers(s, clean_db):
        await wait_until(all_applied, what="all 5 events applied despite the anomalies")

    assert {k: anomaly(k) - v for k, v in before.items()} == {
        "gap": 1,
        "regression": 1,
        "late_start": 1,
    }
    assert (
        await scalar(
            clean_db,
            "SELECT last_sequence FROM consumer_key_sequences "
            "WHERE consumer = 'users' AND key = :k",
            k=f"user:{a}",
        )
        == 4
    )
