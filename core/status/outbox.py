"""The outbox side of the status: per shard its leader, backlog and oldest event,
and the unreplayed dead letters; all read from Postgres in one connection. The SQL is
the relay's own (core/outbox_store.py, core/leadership.py), so both tell one story."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from core.dead_letters import pending_by_topic
from core.leadership import LeaderSession, connected_relays, leaders
from core.outbox_store import pending
from core.settings import Settings
from core.status.model import DeadLetterStatus, Leader, OutboxStatus, ShardStatus


def _leader(session: LeaderSession) -> Leader:
    return Leader(
        pid=session.pid,
        application_name=session.application_name,
        client_addr=session.client_addr,
        backend_start=session.backend_start,
    )


async def read_outbox(engine: AsyncEngine, settings: Settings) -> OutboxStatus:
    prefix = settings.kafka.transactional_id_prefix
    async with engine.connect() as conn:
        backlog = await pending(conn)
        led = {session.shard: _leader(session) for session in await leaders(conn, prefix)}
        relays = await connected_relays(conn, prefix)
    # Every configured shard, even an idle one, plus any shard that still has rows from
    # a time the deployment ran with more shards (those would otherwise go unseen).
    shards = sorted(set(range(settings.relay.shards)) | backlog.keys())
    return OutboxStatus(
        shards=tuple(
            ShardStatus(
                shard=shard,
                pending=backlog.get(shard, (0, 0.0))[0],
                oldest_age_s=max(0.0, backlog.get(shard, (0, 0.0))[1]),
                leader=led.get(shard),
            )
            for shard in shards
        ),
        relays_connected=relays,
    )


async def read_dead_letters(engine: AsyncEngine) -> DeadLetterStatus:
    by_topic = await pending_by_topic(engine)
    return DeadLetterStatus(tuple(sorted(by_topic.items())))
