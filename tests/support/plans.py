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
    or generic (`plan_cache_mode`)."""
    async with engine.connect() as conn:
        await conn.exec_driver_sql(f"SET plan_cache_mode = {plan_cache_mode}")
        result = await conn.execute(TextClause(f"EXPLAIN (FORMAT JSON) {statement.text}"), params)
        return parse_explain(result.scalar_one())


def scans_of(nodes: list[dict[str, Any]], table: str) -> list[dict[str, Any]]:
    """The nodes that read `table` (not the one that writes it)."""
    return [n for n in nodes if n.get("Relation Name") == table and n["Node Type"] != "ModifyTable"]
