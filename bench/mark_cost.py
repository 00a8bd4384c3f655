"""What marking a published row costs Postgres, against a layout that never rewrites
the event row.

Today's mark (core/outbox_store.py) sets `published_at` and `receipt` on the outbox row:
since `published_at` is in the partial index's predicate, it is never a HOT update, so
Postgres writes a new version of the whole row and an entry in each full index. The
alternative measured beside it, on the same filled outbox and in the same batches:
a narrow row per published event in a receipts table, and the delete of a narrow row
from a table of pending ids (which the writer would fill and the fetch would read).
Batches alternate between the two. Time per row and WAL bytes per row
(pg_current_wal_lsn), medians over the batches.

    python -m bench mark-cost --events 100000
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import asyncpg

from bench.common import bench_settings, drop_run, progress, write_result
from bench.relay_drain import fill
from core.outbox_store import _MARK

_SETUP = """
    CREATE TABLE bench_pending (shard smallint, id bigint, PRIMARY KEY (shard, id));
    INSERT INTO bench_pending SELECT shard, id FROM outbox;
    CREATE TABLE bench_receipts (
        id bigint PRIMARY KEY, partition int, "offset" bigint, published_at timestamptz
    );
"""
_RECEIPTS = """
    INSERT INTO bench_receipts
    SELECT r.id, r.partition, r."offset", now()
    FROM unnest($1::bigint[], $2::int[], $3::bigint[]) AS r(id, partition, "offset")
"""
_UNPEND = "DELETE FROM bench_pending WHERE shard = 0 AND id = ANY($1::bigint[])"


async def _wal(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))


async def measure(url: str, batch: int) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(_SETUP)
        # Separately: a multi-statement string runs as one transaction, and VACUUM
        # refuses to run inside one.
        await conn.execute("VACUUM ANALYZE bench_pending")
        ids = [r[0] for r in await conn.fetch("SELECT id FROM outbox ORDER BY id")]
        batches = [ids[i : i + batch] for i in range(0, len(ids), batch)]
        per_row: dict[str, list[float]] = {"update_mark": [], "receipt_and_unpend": []}
        wal: dict[str, list[float]] = {"update_mark": [], "receipt_and_unpend": []}
        for n, rows in enumerate(batches):
            partitions, offsets = [0] * len(rows), list(range(len(rows)))
            variant = "update_mark" if n % 2 == 0 else "receipt_and_unpend"
            wal_before, started = await _wal(conn), time.perf_counter()
            if variant == "update_mark":
                await conn.execute(_MARK, rows, partitions, offsets)
            else:
                async with conn.transaction():
                    await conn.execute(_RECEIPTS, rows, partitions, offsets)
                    await conn.execute(_UNPEND, rows)
            per_row[variant].append((time.perf_counter() - started) / len(rows) * 1e6)
            wal[variant].append((await _wal(conn) - wal_before) / len(rows))
    finally:
        await conn.close()
    result: dict[str, Any] = {
        variant: {
            "us_per_row": round(statistics.median(per_row[variant]), 2),
            "wal_bytes_per_row": round(statistics.median(wal[variant])),
            "batches": len(per_row[variant]),
        }
        for variant in per_row
    }
    result["time_ratio"] = round(
        result["receipt_and_unpend"]["us_per_row"] / result["update_mark"]["us_per_row"], 3
    )
    result["wal_ratio"] = round(
        result["receipt_and_unpend"]["wal_bytes_per_row"]
        / result["update_mark"]["wal_bytes_per_row"],
        3,
    )
    return result


def main(events: int) -> dict[str, Any]:
    settings = bench_settings("markcost")
    try:
        progress(f"filling outbox with {events} events (one shard)")
        asyncio.run(fill(settings, events, 5000))
        result = asyncio.run(measure(settings.database.libpq_url, settings.relay.batch_size))
    finally:
        drop_run(settings)
    summary = {"events": events, "batch_size": settings.relay.batch_size, **result}
    progress(str(summary))
    write_result("mark_cost", summary)
    return summary
