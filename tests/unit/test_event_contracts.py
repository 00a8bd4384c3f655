"""The event contracts agree with their producers and consumers: both sides are read
from the code (the producers' source, the handler registry), never from a list kept
by hand; and docs/events.md is what the contracts generate."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import msgspec
import pytest

import api
import consumers
import core.events
import core.stripe
from consumers.handlers import GROUPS
from consumers.registry import HandlerGroup
from core.events.catalog import CONTRACTS
from core.events.contract import DomainEvent, EventContract
from core.events.doc import DOC, main, render
from core.events.projects import ProjectApplied
from core.events.users import UserRegistered
from core.stripe.event import StripeSnapshotEvent

PRODUCERS = (api, consumers)


def _modules(package: ModuleType) -> Iterator[ModuleType]:
    yield package
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        yield importlib.import_module(info.name)


def _contract(module: ModuleType, node: ast.expr) -> type[EventContract] | None:
    """The contract class an expression names in `module`, if it names one."""
    if isinstance(node, ast.Name):
        found = getattr(module, node.id, None)
    elif isinstance(node, ast.Attribute):
        base = _contract_module(module, node.value)
        found = getattr(base, node.attr, None) if base is not None else None
    else:
        return None
    if isinstance(found, type) and issubclass(found, EventContract):
        return found
    return None


def _contract_module(module: ModuleType, node: ast.expr) -> ModuleType | None:
    if isinstance(node, ast.Name):
        found = getattr(module, node.id, None)
        return found if isinstance(found, ModuleType) else None
    return None


def produced() -> dict[type[EventContract], set[str]]:
    """Contract -> the producing modules: where one is built (`Contract(...)`), or
    where received bytes are decoded into one (`msgspec.convert(doc, Contract)`, the
    webhook), in the API's and the consumers' source."""
    found: dict[type[EventContract], set[str]] = {}
    for package in PRODUCERS:
        for module in _modules(package):
            source = Path(module.__file__ or "").read_text()
            for node in ast.walk(ast.parse(source)):
                if not isinstance(node, ast.Call):
                    continue
                candidates = [node.func]
                if isinstance(node.func, ast.Attribute) and node.func.attr == "convert":
                    candidates += node.args[1:2]
                for candidate in candidates:
                    contract = _contract(module, candidate)
                    if contract is not None:
                        found.setdefault(contract, set()).add(module.__name__)
    return found


def handled() -> dict[str, type[EventContract]]:
    """Event type -> the contract its handlers decode it with, from the registry."""
    decoded: dict[str, type[EventContract]] = {}
    for group in GROUPS:
        for event_type in group.handlers:
            assert event_type in group.contracts, (
                f"{group.consumer} handles {event_type} without decoding it into a contract"
            )
            contract = group.contracts[event_type]
            assert contract.topic == group.topic, (group.consumer, event_type)
            decoded[event_type] = contract
    return decoded


def test_every_contract_is_in_the_catalog() -> None:
    for module in (*_modules(core.events), *_modules(core.stripe)):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, EventContract)
                and value not in (EventContract, DomainEvent)
            ):
                assert value in CONTRACTS, f"{value.__name__} is missing from the catalog"
    assert len({c.event_type for c in CONTRACTS}) == len(CONTRACTS)


def test_every_produced_event_has_a_contract_and_every_contract_a_producer() -> None:
    producers = produced()
    assert set(producers) == set(CONTRACTS), {
        "produced without a catalogued contract": set(producers) - set(CONTRACTS),
        "catalogued but never produced": set(CONTRACTS) - set(producers),
    }
    # The API's domain events and the payment consumer's payment.processed.
    assert "api.events" in producers[CONTRACTS[0]]
    assert "api.payments.webhook" in producers[StripeSnapshotEvent]


def test_every_handled_event_type_has_its_contract_and_a_producer() -> None:
    decoded = handled()
    producers = produced()
    assert decoded, "no handler registered through a contract"
    for event_type, contract in decoded.items():
        assert [c for c in CONTRACTS if c.matches(event_type)] == [contract], event_type
        assert contract in producers, f"{event_type} is handled but nothing produces it"
    domain = {c.event_type for c in CONTRACTS if issubclass(c, DomainEvent)}
    consumed_domain = domain & set(decoded)
    # The payment.* events are written for downstream consumers; every other domain
    # event type has a handler of this platform.
    assert consumed_domain == {t for t in domain if not t.startswith("payment.")}


def test_the_events_doc_is_in_step_with_the_contracts() -> None:
    assert DOC.read_text() == render(), "docs/events.md is stale: python -m core.events.doc"
    assert main(["--check"]) == 0
    for contract in CONTRACTS:
        assert f"## `{contract.event_type}`" in render()


def test_schemas_render_for_every_contract() -> None:
    _, defs = msgspec.json.schema_components(CONTRACTS)
    assert {c.__name__ for c in CONTRACTS} <= set(defs)


def test_a_handler_group_refuses_a_contract_it_cannot_decode() -> None:
    users = HandlerGroup(consumer="c", topic="user")
    with pytest.raises(ValueError, match="is on project, not user"):
        users.handle(ProjectApplied)
    with pytest.raises(ValueError, match=r"does not decode user\.login"):
        users.handle(UserRegistered, "user.login")
    payments = HandlerGroup(consumer="c", topic="payment")
    with pytest.raises(ValueError, match=r"does not decode payment\.processed"):
        payments.handle(StripeSnapshotEvent, "payment.processed")
