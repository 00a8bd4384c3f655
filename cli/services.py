"""`connectin services up|down|status|env`: the commands; what they run is
`devenv.services`."""

from __future__ import annotations

import shlex
from dataclasses import replace

import typer

from core.settings import Settings
from devenv.common import redact_url
from devenv.services import (
    KAFKA,
    POSTGRES,
    ServiceError,
    as_started,
    ensure_up,
    env_for,
    origin,
    status,
    stop,
)

services_app = typer.Typer(
    no_args_is_help=True,
    help="Real Postgres and Kafka: reuse, Docker compose, or local (Debian package / Kafka jars).",
)


def _fail(exc: ServiceError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@services_app.command("up")
def up_command(
    kafka_brokers: int = typer.Option(
        None,
        "--kafka-brokers",
        min=1,
        help="Nodes of the local Kafka cluster (default KAFKA_LOCAL_BROKERS, 1); 3 = "
        "replicated topics (RF 3, min.insync.replicas 2)",
    ),
) -> None:
    """Start Postgres and Kafka unless they already answer (idempotent)."""
    settings = Settings.from_env()
    if kafka_brokers is not None:
        settings = replace(settings, kafka=replace(settings.kafka, local_brokers=kafka_brokers))
    try:
        env = ensure_up(settings)
    except ServiceError as exc:
        raise _fail(exc) from None
    typer.echo(f"postgres: {redact_url(env['DATABASE_URL'])}")
    typer.echo(f"kafka:    {env['KAFKA_BOOTSTRAP_SERVERS']}")
    typer.echo('export them with: eval "$(connectin services env)"')


@services_app.command("down")
def down_command() -> None:
    """Stop what `up` started; servers it found already running are left alone."""
    try:
        stop(Settings.from_env())
    except ServiceError as exc:
        raise _fail(exc) from None


@services_app.command("status")
def status_command() -> None:
    """Whether each service answers; exit code 1 if one does not."""
    settings = as_started(Settings.from_env())
    env = env_for(settings)
    addresses = {POSTGRES: redact_url(env["DATABASE_URL"]), KAFKA: env["KAFKA_BOOTSTRAP_SERVERS"]}
    states = status(settings)
    for name, ok in states.items():
        owner = origin(name, settings)
        started = f"started by `services up` ({owner})" if owner else "not started by us"
        typer.echo(f"{name:9} {'up' if ok else 'DOWN':5} {addresses[name]}  [{started}]")
    if not all(states.values()):
        raise typer.Exit(1)


@services_app.command("env")
def env_command() -> None:
    """Print `export` lines for the configured services (use with eval)."""
    for key, value in env_for(Settings.from_env()).items():
        typer.echo(f"export {key}={shlex.quote(value)}")
