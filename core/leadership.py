"""How relays mark shard leadership in Postgres, shared so that operators' tools
(`connectin status`, /ops) can find the leaders without importing relay/.

A relay holds `pg_try_advisory_lock(namespace, shard)` on a dedicated connection whose
`application_name` is `relay_application_name(prefix)`. The queries that read those
marks back (leaders, connected relays) live here too, so the relay and the status agree.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


def lock_namespace(transactional_id_prefix: str) -> int:
    """The first key of pg_try_advisory_lock(int, int): one namespace per deployment, so
    two platforms sharing a database never contend for each other's shards."""
    return zlib.crc32(transactional_id_prefix.encode()) - 2**31


def relay_application_name(transactional_id_prefix: str) -> str:
    """The application_name of a relay's lease connection (Postgres keeps 63 bytes)."""
    return f"connectin-relay:{transactional_id_prefix}"[:63]


# The relays view: who leads which shard, and how many relays are connected, read by the
# relays themselves (to share the shards fairly) and by operators' tools alike.

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


@dataclass(frozen=True)
class LeaderSession:
    """The Postgres session holding a shard's lock: the relay leading it."""

    shard: int
    pid: int
    application_name: str
    client_addr: str | None
    backend_start: datetime | None


async def leaders(conn: AsyncConnection, transactional_id_prefix: str) -> list[LeaderSession]:
    """Every shard of this deployment that some relay leads, with that relay's session."""
    result = await conn.execute(_LEADERS, {"ns": lock_namespace(transactional_id_prefix)})
    return [
        LeaderSession(
            shard=int(r.shard),
            pid=int(r.pid),
            application_name=str(r.application_name or ""),
            client_addr=r.client_addr,
            backend_start=r.backend_start,
        )
        for r in result
    ]


async def connected_relays(conn: AsyncConnection, transactional_id_prefix: str) -> int:
    """Relays of this deployment connected right now (their lease connections)."""
    result = await conn.execute(_RELAYS, {"app": relay_application_name(transactional_id_prefix)})
    return int(result.scalar_one())
