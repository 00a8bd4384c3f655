"""Every metric the alerts and the dashboard use exists in the code, with the labels
they select on; and docs/metrics.md documents every metric the code exports."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import yaml
from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import CollectorRegistry

import consumers.metrics
import relay.metrics
from api.metrics import HttpMetrics
from core.status.model import (
    ConsumersStatus,
    DeadLetterStatus,
    GroupStatus,
    Leader,
    OutboxStatus,
    PartitionLag,
    ShardStatus,
    StatusSnapshot,
)
from core.status.prometheus import METRICS, PREFIX, StatusMetrics, families
from tests.support import REPO

ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "connectin.json"
DOCS = REPO / "docs" / "metrics.md"

# Series names each metric type exposes (prometheus_client's text format).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
}
# The name operators see and the docs list: counters with their _total.
SHOWN_SUFFIX = {"counter": "_total", "gauge": "", "histogram": "", "summary": ""}
NAME = re.compile(r"\bconnectin_[a-z0-9_]+")


@dataclass(frozen=True)
class Metric:
    process: str
    name: str  # family name, without _total
    kind: str
    labels: tuple[str, ...]
    help: str

    @property
    def shown(self) -> str:
        return self.name + SHOWN_SUFFIX[self.kind]

    @property
    def series(self) -> set[str]:
        return {self.name + suffix for suffix in SUFFIXES[self.kind]}


def _wrapped(process: str, metric: MetricWrapperBase) -> Metric:
    [family] = metric.describe()
    labels: tuple[str, ...] = tuple(metric._labelnames)
    return Metric(process, family.name, family.type, labels, family.documentation)


def _module_metrics(process: str, module: ModuleType) -> list[Metric]:
    return [
        _wrapped(process, value)
        for value in vars(module).values()
        if isinstance(value, MetricWrapperBase)
    ]


def catalogue() -> list[Metric]:
    """Every metric the platform's code defines, by the process that exports it."""
    http = HttpMetrics()
    found = _module_metrics("relay", relay.metrics)
    found += _module_metrics("consumers", consumers.metrics)
    found += [_wrapped("api", http.requests), _wrapped("api", http.latency)]
    found += [
        Metric("api (status)", PREFIX + name, "gauge", labels, help_text)
        for name, (help_text, labels) in METRICS.items()
    ]
    return found


def _expressions() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    exprs = [str(rule["expr"]) for group in rules["groups"] for rule in group["rules"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                exprs.append(node["expr"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(DASHBOARD.read_text()))
    return exprs


def test_alerts_and_dashboard_use_only_metrics_that_exist() -> None:
    by_series = {series: m for m in catalogue() for series in m.series}
    exprs = _expressions()
    assert len(exprs) > 20, "alerts.yml or connectin.json lost their expressions"
    unknown = {name for expr in exprs for name in NAME.findall(expr) if name not in by_series}
    assert not unknown, f"not defined in relay/consumers/api/status metrics: {sorted(unknown)}"


def test_selected_labels_exist_on_their_metric() -> None:
    by_series = {series: m for m in catalogue() for series in m.series}
    selector = re.compile(r"\b(connectin_[a-z0-9_]+)\{([^}]*)\}")
    for expr in _expressions():
        for name, matchers in selector.findall(expr):
            metric = by_series[name]
            allowed = {*metric.labels, "le"} if name.endswith("_bucket") else set(metric.labels)
            for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
                assert label in allowed, f"{name} has no label {label!r} (in: {expr})"


def test_every_alert_has_a_summary_and_a_severity() -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]


def test_dashboard_panels_are_placed_and_use_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for t in panel.get("targets", []):
            assert t["datasource"]["uid"] == "${datasource}", panel["title"]


def test_docs_list_every_metric_with_its_labels_and_help() -> None:
    docs = DOCS.read_text()
    for metric in catalogue():
        labels = ", ".join(f"`{label}`" for label in metric.labels) or "none"
        help_text = metric.help.replace("|", "\\|").replace("<", "\\<")  # Markdown escapes
        row = f"| `{metric.shown}` | {metric.kind} | {labels} | {help_text} |"
        assert row in docs, f"docs/metrics.md lacks or has an outdated row:\n{row}"


def test_status_collector_exports_what_it_declares() -> None:
    """The names declared in METRICS are the ones a scrape returns (no typo between)."""
    registry = CollectorRegistry()

    async def never() -> Any:
        raise AssertionError("describe() must not take a snapshot")

    registry.register(StatusMetrics(never))
    # No snapshot yet and no event loop to refresh on: nothing exported, nothing raised.
    assert b"connectin_status_" not in generate_latest(registry)
    declared = {f.name for f in StatusMetrics(never).describe()}
    assert declared == {PREFIX + name for name in METRICS}


def test_status_families_follow_the_snapshot() -> None:
    snapshot = StatusSnapshot(
        taken_at=datetime(2026, 1, 1, tzinfo=UTC),
        outbox=OutboxStatus(
            shards=(
                ShardStatus(0, 5, 12.5, Leader(42, "connectin-relay:x", "10.0.0.7", None)),
                ShardStatus(1, 0, 0.0, None),
            ),
            relays_connected=1,
        ),
        consumers=ConsumersStatus(
            (GroupStatus("users", "x-users", "STABLE", 2, (PartitionLag("t", 0, 3, 10, 7),)),)
        ),
        dead_letters=DeadLetterStatus((("t", 4),)),
        findings=(),
        errors=(),
        thresholds={},
    )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families(snapshot)
        for s in family.samples
    }
    assert samples[("connectin_status_up", ())] == 1
    assert samples[("connectin_status_shard_leader", (("shard", "0"),))] == 1
    assert samples[("connectin_status_shard_leader", (("shard", "1"),))] == 0
    assert (
        samples[("connectin_status_outbox_oldest_unpublished_age_seconds", (("shard", "0"),))]
        == 12.5
    )
    lag_labels = (("group", "users"), ("partition", "0"), ("topic", "t"))
    assert samples[("connectin_status_consumer_lag", lag_labels)] == 7
    assert samples[("connectin_status_dead_letters_unreplayed", (("topic", "t"),))] == 4
    for name, labels in samples:
        declared = METRICS[name.removeprefix(PREFIX)][1]
        assert sorted(declared) == [k for k, _ in labels], name
    down = families(replace(snapshot, outbox=None, errors=("kafka: down",)))
    assert [s.value for f in down if f.name == "connectin_status_up" for s in f.samples] == [0]
