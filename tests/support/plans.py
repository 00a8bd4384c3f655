"""Reading Postgres plans in plan tests: EXPLAIN's JSON flattened to its nodes."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import TextClause
from sqlalchemy.ext.asyncio import AsyncEngine


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(plan_nodes(child))
    return nodes


def parse_explain(doc: Any) -> list[dict[str, Any]]:
    # SQLAlchemy registers a JSON codec on its asyncpg connections; plain asyncpg does not.
    parsed = doc if isinstance(doc, list) else json.loads(doc)
    return plan_nodes(parsed[0]["Plan"])


# Our processes run prepared statements, which Postgres plans for each execution's
# values (custom) and, after five, may swap for one plan of any values (generic).
PLAN_CACHE_MODES = ("force_custom_plan", "force_generic_plan")


async def explain_statement(
    engine: AsyncEngine, statement: TextClause, params: dict[str, Any], plan_cache_mode: str
) -> list[dict[str, Any]]:
    """The plan of one of our SQLAlchemy text statements with these parameters, custom
    or generic (`plan_cache_mode`). Through PREPARE and EXPLAIN EXECUTE: a plain EXPLAIN
    with parameters plans for their values whatever `plan_cache_mode` says."""
    compiled = statement.compile(dialect=engine.dialect)
    names = compiled.positiontup or []
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        # SET LOCAL ends with the transaction and the statement is deallocated: the
        # connection goes back to the shared pool without either.
        async with driver.transaction():
            await driver.execute(f"SET LOCAL plan_cache_mode = {plan_cache_mode}")
            await driver.execute(f"PREPARE plan_probe AS {compiled}")
            try:
                # EXECUTE takes no protocol parameters: each value goes in as a literal
                # of its parameter's type, rendered by Postgres itself.
                types = await driver.fetchval(
                    "SELECT parameter_types::text[] FROM pg_prepared_statements"
                    " WHERE name = 'plan_probe'"
                )
                literals = [
                    await driver.fetchval(f"SELECT quote_nullable(CAST($1 AS {kind}))", value)
                    + f"::{kind}"
                    for kind, value in zip(types, (params[name] for name in names), strict=True)
                ]
                doc = await driver.fetchval(
                    f"EXPLAIN (FORMAT JSON) EXECUTE plan_probe({', '.join(literals)})"
                )
            finally:
                await driver.execute("DEALLOCATE plan_probe")
        return parse_explain(doc)


async def analyze(engine: AsyncEngine, table: str) -> None:
    """Fresh statistics for `table` (ANALYZE cannot run inside a transaction block)."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql(f"ANALYZE {table}")


def scans_of(nodes: list[dict[str, Any]], table: str) -> list[dict[str, Any]]:
    """The nodes that read `table` (not the one that writes it)."""
    return [n for n in nodes if n.get("Relation Name") == table and n["Node Type"] != "ModifyTable"]
