"""A consumer's batch reads the last sequences of its keys by primary key, however
stale the statistics (a plan test, not a timing test).

The stale case is the one a deploy or a backfill makes: the table gains a row per
key ever seen, and the last ANALYZE counted a few hundred for this consumer while
tens of thousands arrived since, faster than autovacuum's next look. Planned on
those statistics, the lookup read every row of the consumer and filtered it: 73 ms
per batch at 90k keys instead of ~2 ms (bench consumers).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from consumers.inbox import _LAST_SEQUENCES
from tests.support.plans import PLAN_CACHE_MODES, analyze, explain_statement, scans_of

GROWN = 90_000
BATCH = 500


def probed_by_key(scans: list[dict[str, object]]) -> bool:
    """Every read is a primary-key scan whose condition names the key, with nothing
    left to filter: one probe per key, never the consumer's rows read and sifted."""
    return bool(scans) and all(
        n["Node Type"] in ("Index Scan", "Index Only Scan")
        and n.get("Index Name") == "pk_consumer_key_sequences"
        and "key" in str(n.get("Index Cond", ""))
        and "Filter" not in n
        for n in scans
    )


async def test_last_sequences_are_probed_by_key_on_stale_statistics(
    clean_db: AsyncEngine,
) -> None:
    async with clean_db.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO consumer_key_sequences (consumer, key, last_sequence)"
            " SELECT 'other', 'k:' || g, 1 FROM generate_series(1, 10000) AS g"
            " UNION ALL SELECT 'c', 'k:' || g, 1 FROM generate_series(1, 100) AS g"
        )
    await analyze(clean_db, "consumer_key_sequences")
    async with clean_db.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO consumer_key_sequences (consumer, key, last_sequence)"
            f" SELECT 'c', 'k:' || g, 1 FROM generate_series(101, {GROWN}) AS g"
        )
    params = {"consumer": "c", "keys": [f"k:{g}" for g in range(GROWN - BATCH, GROWN)]}
    for _ in ("stale statistics", "analyzed"):
        for mode in PLAN_CACHE_MODES:
            nodes = await explain_statement(clean_db, _LAST_SEQUENCES, params, mode)
            scans = scans_of(nodes, "consumer_key_sequences")
            assert probed_by_key(scans), (mode, scans)
        await analyze(clean_db, "consumer_key_sequences")
