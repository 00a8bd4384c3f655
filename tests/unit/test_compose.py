"""compose.yaml, the Dockerfile and `connectin services env` agree with the settings.

No Docker needed: the files are parsed, and the environment they hand the app is fed
through `Settings.from_env`, so a renamed variable fails here instead of silently
falling back to a default inside a container.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cli.services import services_app
from core.settings import Settings
from devenv.local_kafka import local_cluster, server_properties
from tests.support import REPO as ROOT

APP_SERVICES = ("api", "relay", "consumers")
ALL_SERVICES = {"postgres", "kafka", "migrate", *APP_SERVICES, "localstripe", "stripe-webhook"}
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    svc = compose["services"][name]
    assert isinstance(svc, dict)
    return svc


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """The service's environment as the container sees it with no overrides set:
    `${VAR:-default}` becomes its default."""
    raw = svc.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {str(k): INTERPOLATION.sub(lambda m: m.group(2) or "", str(v)) for k, v in raw.items()}


class RecordingEnv(Mapping[str, str]):
    """A mapping that remembers which names were looked up."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._data = dict(values)
        self.read: set[str] = set()

    # Mapping.get goes through __getitem__, so recording here sees every lookup.
    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_every_service_is_defined(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == ALL_SERVICES


def test_servers_use_official_images(compose: dict[str, Any]) -> None:
    assert re.fullmatch(r"postgres:1[6-9](\.\d+)?", service(compose, "postgres")["image"])
    assert re.fullmatch(r"apache/kafka:4\.1\.\d+", service(compose, "kafka")["image"])


def test_built_services_come_from_the_official_python_image(compose: dict[str, Any]) -> None:
    bases = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert bases and all(base == "python:3.11-slim" for base in bases)
    for name in ("migrate", *APP_SERVICES, "localstripe"):
        assert service(compose, name)["build"]["context"] == "."


def test_servers_have_healthchecks(compose: dict[str, Any]) -> None:
    pg_check = " ".join(service(compose, "postgres")["healthcheck"]["test"])
    assert "pg_isready" in pg_check
    kafka_check = " ".join(service(compose, "kafka")["healthcheck"]["test"])
    assert "--bootstrap-server" in kafka_check


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_servers_and_migrations(compose: dict[str, Any], name: str) -> None:
    deps = service(compose, name)["depends_on"]
    assert deps["postgres"]["condition"] == "service_healthy"
    assert deps["kafka"]["condition"] == "service_healthy"
    assert deps["migrate"]["condition"] == "service_completed_successfully"


def test_migrate_waits_for_healthy_postgres(compose: dict[str, Any]) -> None:
    migrate = service(compose, "migrate")
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["command"] == ["connectin", "migrate"]


def test_commands(compose: dict[str, Any]) -> None:
    assert service(compose, "api")["command"] == [
        "connectin",
        "api",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    assert service(compose, "relay")["command"] == ["connectin", "relay"]
    assert service(compose, "consumers")["command"] == ["connectin", "consumers"]
    assert service(compose, "localstripe")["command"] == ["localstripe", "--port", "8420"]


@pytest.mark.parametrize("name", ("migrate", *APP_SERVICES))
def test_app_environment_is_read_by_settings(compose: dict[str, Any], name: str) -> None:
    env = environment(service(compose, name))
    recorder = RecordingEnv(env)
    settings = Settings.from_env(recorder)

    assert set(env) <= recorder.read, f"not read by Settings.from_env: {set(env) - recorder.read}"
    assert settings.database.libpq_url == env["DATABASE_URL"]
    assert settings.database.url.startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in settings.database.url
    assert settings.kafka.bootstrap_servers == env["KAFKA_BOOTSTRAP_SERVERS"]
    assert settings.auth.jwt_secret == env["JWT_SECRET"]
    assert settings.api.cors_origins == tuple(env["CORS_ORIGINS"].split(","))
    assert settings.api.ops_token == env["OPS_TOKEN"]
    assert settings.stripe.secret_key == env["STRIPE_SECRET_KEY"]
    assert settings.stripe.webhook_secret == env["STRIPE_WEBHOOK_SECRET"]
    assert settings.stripe.api_base == env["STRIPE_API_BASE"] == "http://localstripe:8420"


def test_app_kafka_address_is_a_kafka_listener(compose: dict[str, Any]) -> None:
    kafka_env = environment(service(compose, "kafka"))
    app_bootstrap = environment(service(compose, "api"))["KAFKA_BOOTSTRAP_SERVERS"]
    assert f"://{app_bootstrap}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    # Host clients (tests, `connectin services up`) use the defaults.
    assert f"://{Settings().kafka.bootstrap_servers}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]


def test_kafka_is_a_single_node_kraft_with_replication_factor_one(
    compose: dict[str, Any],
) -> None:
    env = environment(service(compose, "kafka"))
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_local_kafka_config_matches_compose_semantics() -> None:
    props = dict(
        line.split("=", 1)
        for line in server_properties(Settings()).splitlines()
        if line and not line.startswith("#")
    )
    assert props["process.roles"] == "broker,controller"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["auto.create.topics.enable"] == "false"
    assert "PLAINTEXT://127.0.0.1:9092" in props["listeners"]
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert "controller.quorum.voters" not in props  # --standalone forbids it


def test_local_cluster_of_three_replicates_everything() -> None:
    """`connectin services up --kafka-brokers 3`: static quorum of the three nodes,
    internal and new topics at RF 3 with min.insync.replicas 2; the env lists all."""
    settings = Settings.from_env({"KAFKA_LOCAL_BROKERS": "3"})
    cluster = local_cluster(settings)
    assert cluster.bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    props = dict(
        line.split("=", 1)
        for line in cluster.node(2).properties().splitlines()
        if line and not line.startswith("#")
    )
    assert props["node.id"] == "2"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    )
    for name in ("offsets.topic", "transaction.state.log", "default"):
        assert props[f"{name}.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"
    assert props["min.insync.replicas"] == "2"


ODD_ENV = {
    "DATABASE_URL": "postgresql://connectin:p%27a%20ss@127.0.0.1:6543/connectin",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092",
}


def env_output(env: Mapping[str, str]) -> str:
    result = CliRunner().invoke(services_app, ["env"], env=dict(env))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_services_env_prints_parseable_exports() -> None:
    exported = {}
    for line in env_output(ODD_ENV).splitlines():
        keyword, assignment = shlex.split(line)
        assert keyword == "export"
        key, value = assignment.split("=", 1)
        exported[key] = value
    assert exported == ODD_ENV
    settings = Settings.from_env(exported)
    assert settings.database.libpq_url == ODD_ENV["DATABASE_URL"]
    assert settings.kafka.bootstrap_servers == ODD_ENV["KAFKA_BOOTSTRAP_SERVERS"]


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_services_env_is_shell_evaluable() -> None:
    script = 'eval "$(cat)"; printf "%s\\n%s\\n" "$DATABASE_URL" "$KAFKA_BOOTSTRAP_SERVERS"'
    shell = subprocess.run(
        ["sh", "-c", script],
        input=env_output(ODD_ENV),
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout.splitlines() == [
        ODD_ENV["DATABASE_URL"],
        ODD_ENV["KAFKA_BOOTSTRAP_SERVERS"],
    ]


def test_localstripe_is_told_where_to_deliver_webhooks(compose: dict[str, Any]) -> None:
    hook = service(compose, "stripe-webhook")
    assert hook["command"][:2] == ["connectin", "register-webhook"]
    assert "http://api:8000" in hook["command"]
    assert hook["depends_on"]["localstripe"]["condition"] == "service_started"
    assert hook["environment"]["STRIPE_API_BASE"] == "http://localstripe:8420"


def test_published_ports_listen_on_loopback_only(compose: dict[str, Any]) -> None:
    """The stack runs as development, on the published secrets: a port reachable from the
    network would let anyone on it forge a JWT or a paid webhook."""
    published = [
        (name, str(port))
        for name, spec in compose["services"].items()
        for port in spec.get("ports", [])
    ]
    assert published
    assert [(name, port) for name, port in published if not port.startswith("127.0.0.1:")] == []
