"""`connectin`: starts each process of the platform and manages local services.

Process packages are imported inside their command so one process never loads
another's code (docs/architecture.md: they meet only in core/, the database and Kafka).
"""

from __future__ import annotations

import asyncio

import typer

from cli.dlq import dlq_app
from cli.services import services_app
from cli.status import status
from core.logging import configure_logging
from core.secrets import startup_settings
from core.settings import Settings

app = typer.Typer(no_args_is_help=True, help="ConnectIn event platform")
app.add_typer(services_app, name="services", help="Local Postgres and Kafka: up|down|status|env")
app.add_typer(dlq_app, name="dlq", help="Dead letters: list and replay")
app.command(help="Outbox, relay, consumer lag and dead letters at a glance")(status)


@app.command()
def migrate() -> None:
    """Apply the database migrations (alembic upgrade head)."""
    from migrations import upgrade

    settings = Settings.from_env()
    upgrade(settings.database.url)
    typer.echo("database migrated to head")


@app.command()
def api(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes"),
) -> None:
    """Run the HTTP API."""
    import uvicorn

    from api.worker_metrics import worker_metrics_dir

    settings = startup_settings("api")
    configure_logging(settings.log_level, process="api")
    with worker_metrics_dir(workers):
        # uvicorn would rewrite the client address and scheme from X-Forwarded-*
        # whenever the peer is in its own forwarded_allow_ips (127.0.0.1 by default).
        # TRUSTED_PROXIES alone decides (api/client_address.py), so uvicorn's is off.
        uvicorn.run(
            "api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            proxy_headers=False,
            # Our JSON formatter and its redaction handle uvicorn's records too.
            log_config=None,
        )


@app.command()
def relay() -> None:
    """Run the outbox relay (leader per shard, exactly-once publication)."""
    from relay.main import run

    settings = startup_settings("relay")
    configure_logging(settings.log_level, process="relay")
    raise typer.Exit(asyncio.run(run(settings)))


@app.command()
def consumers() -> None:
    """Run the consumer groups (exactly-once effects)."""
    from consumers.main import run

    settings = startup_settings("consumers")
    configure_logging(settings.log_level, process="consumers")
    raise typer.Exit(asyncio.run(run(settings)))


@app.command()
def up(
    api_workers: int = typer.Option(2, min=1, help="worker processes of the API"),
) -> None:
    """Services, migrations, then api + relay + consumers + localstripe in the foreground."""
    from cli.up import run_all

    raise typer.Exit(run_all(startup_settings("up"), api_workers=api_workers))


@app.command("register-webhook")
def register_webhook_command(api_url: str = "http://127.0.0.1:8000") -> None:
    """Register our webhook endpoint with localstripe (STRIPE_API_BASE)."""
    from cli.up import register_webhook

    settings = Settings.from_env()
    if not settings.stripe.api_base:
        typer.echo("STRIPE_API_BASE is not set: real Stripe is configured in its dashboard")
        raise typer.Exit(2)
    ok = register_webhook(settings.stripe.api_base, api_url, settings.stripe.webhook_secret)
    raise typer.Exit(0 if ok else 1)


def main() -> None:
    app()
