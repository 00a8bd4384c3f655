"""`connectin dlq list|replay`: the operator's view of dead letters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.dead_letters import DeadLetter, ReplayResult, list_dead_letters, replay
from core.settings import Settings

T = TypeVar("T")

dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: list and replay them")


def _with_engine(work: Callable[[Settings, AsyncEngine], Awaitable[T]]) -> T:
    settings = Settings.from_env()

    async def main() -> T:
        engine = create_engine(settings.database, application_name="connectin-dlq")
        try:
            return await work(settings, engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _short(text: str | None, width: int) -> str:
    text = (text or "-").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(rows: list[DeadLetter]) -> str:
    header = (
        f"{'ID':>6}  {'SOURCE':<8} {'CONSUMER':<12} {'TOPIC':<24} {'PART/OFFSET':<12} "
        f"{'TRIES':>5}  {'CREATED':<19} {'REPLAYED':<19} ERROR"
    )
    lines = [header]
    for d in rows:
        position = "-" if d.partition is None else f"{d.partition}/{d.offset}"
        replayed = d.replayed_at.strftime("%Y-%m-%d %H:%M:%S") if d.replayed_at else "-"
        lines.append(
            f"{d.id:>6}  {d.source:<8} {_short(d.consumer, 12):<12} {_short(d.topic, 24):<24} "
            f"{position:<12} {d.attempts:>5}  {d.created_at.strftime('%Y-%m-%d %H:%M:%S'):<19} "
            f"{replayed:<19} {_short(d.error, 60)}"
        )
    return "\n".join(lines)


@dlq_app.command("list")
def list_command(
    topic: Annotated[str | None, typer.Option(help="Only this original topic")] = None,
    pending: Annotated[bool, typer.Option("--pending", help="Only not replayed yet")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts")] = False,
) -> None:
    """List dead letters, newest first."""

    async def work(_: Settings, engine: AsyncEngine) -> list[DeadLetter]:
        return await list_dead_letters(engine, topic=topic, pending_only=pending, limit=limit)

    rows = _with_engine(work)
    if as_json:
        typer.echo(json.dumps([d.to_dict() for d in rows], indent=2))
    elif not rows:
        typer.echo("no dead letters")
    else:
        typer.echo(_table(rows))


def _progress(done: int, total: int, result: ReplayResult) -> None:
    if result.ok:
        typer.echo(
            f"[{done}/{total}] dead letter {result.id} -> {result.topic} "
            f"partition {result.partition} offset {result.offset}: replayed"
        )
    else:
        typer.echo(f"[{done}/{total}] dead letter {result.id}: FAILED: {result.error}", err=True)


@dlq_app.command("replay")
def replay_command(
    dead_letter_id: Annotated[int | None, typer.Argument(help="The dead letter's id")] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="Every dead letter not replayed yet")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON results for scripts")] = False,
) -> None:
    """Produce a dead letter to its original topic again. Consumers that already
    processed the event skip it, so replaying twice is harmless."""
    if (dead_letter_id is None) == (not replay_all):
        raise typer.BadParameter("give a dead letter ID or --all (not both)")
    ids = [dead_letter_id] if dead_letter_id is not None else None

    async def work(settings: Settings, engine: AsyncEngine) -> list[ReplayResult]:
        return await replay(engine, settings.kafka, ids, on_progress=None if as_json else _progress)

    results = _with_engine(work)
    failed = sum(not r.ok for r in results)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2))
    elif not results:
        typer.echo("nothing to replay")
    else:
        typer.echo(f"replayed {len(results) - failed}, failed {failed}")
    if failed:
        raise typer.Exit(1)
