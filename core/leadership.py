"""How relays mark shard leadership in Postgres, shared so that operators' tools
(`connectin status`, /ops) can find the leaders without importing relay/.

A relay holds `pg_try_advisory_lock(namespace, shard)` on a dedicated connection whose
`application_name` is `relay_application_name(prefix)`.
"""

from __future__ import annotations

import zlib


def lock_namespace(transactional_id_prefix: str) -> int:
    """The first key of pg_try_advisory_lock(int, int): one namespace per deployment, so
    two platforms sharing a database never contend for each other's shards."""
    return zlib.crc32(transactional_id_prefix.encode()) - 2**31


def relay_application_name(transactional_id_prefix: str) -> str:
    """The application_name of a relay's lease connection (Postgres keeps 63 bytes)."""
    return f"connectin-relay:{transactional_id_prefix}"[:63]
