"""The outbox side of the status: per shard its leader, backlog and oldest event,
and the unreplayed dead letters; all read from Postgres in one connection."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.leadership import lock_namespace, relay_application_name
from core.settings import Settings
from core.status.model import DeadLetterStatus, Leader, OutboxStatus, ShardStatus

# The same query as the relay's gauges, so `connectin status` and Grafana agree. It
# runs on the partial index of unpublished rows, as small as the backlog.
_BACKLOG = text(
    """
    SELECT shard, count(*) AS pending, extract(epoch FROM now() - min(created_at)) AS oldest_s
    FROM outbox WHERE published_at IS NULL GROUP BY shard
    """
)

# A relay leads a shard while its lease connection holds the session advisory lock
# (namespace, shard); the two int4 keys show up as classid/objid with objsubid = 2.
_LEADERS = text(
    """
    SELECT l.objid::int AS shard, a.pid, a.application_name,
           host(a.client_addr) AS client_addr, a.backend_start
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.classid = CAST(:ns AS int)::oid
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    """
)

_RELAYS = text(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE application_name = :app AND datname = current_database()"
)

_DEAD_LETTERS = text(
    "SELECT topic, count(*) AS n FROM dead_letters WHERE replayed_at IS NULL "
    "GROUP BY topic ORDER BY topic"
)


def _leader(row: Any) -> Leader:
    return Leader(
        pid=int(row.pid),
        application_name=str(row.application_name or ""),
        client_addr=row.client_addr,
        backend_start=row.backend_start,
    )


async def read_outbox(engine: AsyncEngine, settings: Settings) -> OutboxStatus:
    prefix = settings.kafka.transactional_id_prefix
    async with engine.connect() as conn:
        backlog = {
            int(r.shard): (int(r.pending), float(r.oldest_s)) for r in await conn.execute(_BACKLOG)
        }
        leaders = {
            int(r.shard): _leader(r)
            for r in await conn.execute(_LEADERS, {"ns": lock_namespace(prefix)})
        }
        relays = int(
            (await conn.execute(_RELAYS, {"app": relay_application_name(prefix)})).scalar_one()
        )
    # Every configured shard, even an idle one, plus any shard that still has rows from
    # a time the deployment ran with more shards (those would otherwise go unseen).
    shards = sorted(set(range(settings.relay.shards)) | backlog.keys())
    return OutboxStatus(
        shards=tuple(
            ShardStatus(
                shard=shard,
                pending=backlog.get(shard, (0, 0.0))[0],
                oldest_age_s=max(0.0, backlog.get(shard, (0, 0.0))[1]),
                leader=leaders.get(shard),
            )
            for shard in shards
        ),
        relays_connected=relays,
    )


async def read_dead_letters(engine: AsyncEngine) -> DeadLetterStatus:
    async with engine.connect() as conn:
        rows = await conn.execute(_DEAD_LETTERS)
        return DeadLetterStatus(tuple((str(r.topic), int(r.n)) for r in rows))
