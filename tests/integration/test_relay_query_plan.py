"""The relay's fetch reads the partial index of unpublished rows, however large the
table of published rows grows; its mark reaches each row by the primary key, however
badly the statistics count the backlog (plan tests, not timing tests)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from core.outbox_store import _FETCH, _MARK, _SHARDS_WITH_PENDING
from tests.support.plans import analyze, parse_explain, scans_of

# Rows of a real event's size (~300-byte payload), so the table has a real outbox's
# pages and the planner weighs its scans as it would there.
FILL = """
INSERT INTO outbox (event_id, topic, key, event_type, aggregate_type, aggregate_id,
                    sequence, payload, headers, shard, published_at)
SELECT gen_random_uuid(), 't', 'k:' || g, 'e', 'k', g::text, 1,
       jsonb_build_object('n', g, 'filler', repeat('x', 300)), '{"a": "b"}', g % 4,
       CASE WHEN g > 100000 THEN NULL ELSE now() END
FROM generate_series(1, 120000) AS g
"""


async def explain(engine: AsyncEngine, sql: str, *args: object) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        return parse_explain(await driver.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))


def outbox_scans(nodes: list[dict[str, object]]) -> set[tuple[object, object]]:
    """(node type, index) of every node that reads the outbox table."""
    return {(n["Node Type"], n.get("Index Name")) for n in scans_of(nodes, "outbox")}


async def explain_mark(engine: AsyncEngine) -> list[dict[str, object]]:
    ids = list(range(100_001, 101_001))
    return await explain(engine, _MARK, ids, [0] * len(ids), list(range(len(ids))))


async def test_fetch_uses_the_partial_index_on_a_skewed_table(clean_db: AsyncEngine) -> None:
    # 100,000 published rows with low ids, 20,000 unpublished at the end: the shape on
    # which a plain `shard = $1 ORDER BY id` walks the primary key and filters.
    async with clean_db.begin() as conn:
        await conn.exec_driver_sql(FILL)
    # Before any ANALYZE the planner guesses 0.5% of the rows unpublished (600, not
    # 20,000): a mark that let it read the outbox by that partial index would hash
    # the whole backlog for every batch. By the primary key, it cannot.
    assert outbox_scans(await explain_mark(clean_db)) == {("Index Scan", "pk_outbox")}
    await analyze(clean_db, "outbox")
    nodes = await explain(clean_db, _FETCH, [1], 1000, [])
    assert {n["Index Name"] for n in nodes if "Index Name" in n} == {"ix_outbox_unpublished"}
    # Beside a mark still running, the fetch leaves that batch's rows out: same plan.
    overlapped = await explain(clean_db, _FETCH, [1], 1000, list(range(100_001, 101_001)))
    assert {n["Index Name"] for n in overlapped if "Index Name" in n} == {"ix_outbox_unpublished"}
    assert outbox_scans(await explain_mark(clean_db)) == {("Index Scan", "pk_outbox")}
    watch = await explain(clean_db, _SHARDS_WITH_PENDING, [0, 1, 2, 3])
    assert {n["Index Name"] for n in watch if "Index Name" in n} == {"ix_outbox_unpublished"}
