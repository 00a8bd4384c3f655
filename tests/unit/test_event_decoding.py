"""Decoding an event's data into its contract: what it fills in, and the clear,
permanent InvalidEvent for everything it cannot read."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from core.envelope import Envelope
from core.events.catalog import CONTRACTS
from core.events.contract import DomainEvent
from core.events.errors import InvalidEvent
from core.events.messages import MessageSent
from core.events.payments import (
    CustomerCreated,
    PaymentIntentCreated,
    PaymentProcessed,
    SubscriptionCreated,
)
from core.events.projects import ProjectApplied, ProjectCreated
from core.events.users import UserLoggedIn, UserRegistered
from core.outbox import NewEvent
from core.settings import TopicSettings

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)

SAMPLES: list[DomainEvent] = [
    UserRegistered(user_id=1, username="ann", email="ann@example.com"),
    UserLoggedIn(user_id=1, username="ann", login_at=NOW),
    ProjectCreated(project_id=7, owner_id=1, title="Rocket"),
    ProjectApplied(
        application_id=3, project_id=7, project_title="Rocket", owner_id=1, applicant_id=2
    ),
    MessageSent(message_id=9, conversation_id="1-2", sender_id=2, recipient_id=1, preview="hi"),
    CustomerCreated(user_id=1, customer_id="cus_1"),
    PaymentIntentCreated(
        payment_id=4,
        payment_intent_id="pi_1",
        amount=500,
        currency="usd",
        status="requires_payment_method",
        user_id=1,
    ),
    SubscriptionCreated(
        subscription_id="sub_1", customer_id="cus_1", price_id="plan_1", status="active", user_id=1
    ),
    PaymentProcessed(
        payment_id=4,
        payment_intent_id="pi_1",
        amount=500,
        currency="usd",
        user_id=1,
        stripe_event_id="evt_1",
    ),
]


def _on_the_wire(event: NewEvent) -> Envelope:
    """The envelope as a consumer reads it back from Kafka."""
    envelope, _ = event.render(NOW, sequence=1)
    return Envelope.parse(json.dumps(envelope.to_dict()))


def _envelope(event_type: str, data: dict[str, object], **changes: object) -> Envelope:
    fields: dict[str, object] = {
        "event_id": uuid.uuid4(),
        "event_type": event_type,
        "aggregate_type": "x",
        "aggregate_id": "1",
        "sequence": 1,
        "schema_version": 1,
        "timestamp": NOW,
        "user_id": None,
        "data": data,
    }
    fields.update(changes)
    return Envelope(**fields)  # type: ignore[arg-type]


def test_every_domain_contract_has_a_sample() -> None:
    assert {type(s) for s in SAMPLES} == {c for c in CONTRACTS if issubclass(c, DomainEvent)}


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).event_type)
def test_what_a_producer_writes_decodes_to_the_same_contract(sample: DomainEvent) -> None:
    event = sample.new_event(TopicSettings(), "00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    parsed = _on_the_wire(event)
    assert type(sample).decode(parsed) == sample
    assert parsed.schema_version == type(sample).schema_version
    assert parsed.user_id == sample.acting_user()
    assert event.topic == getattr(TopicSettings(), type(sample).topic)
    assert event.aggregate_id == str(getattr(sample, type(sample).key))


def test_the_wire_keeps_the_original_field_names() -> None:
    applied = SAMPLES[3].new_event(TopicSettings())
    assert applied.data == {
        "application_id": 3,
        "project_id": 7,
        "project_title": "Rocket",
        "owner_id": 1,
        "applicant_id": 2,
    }
    assert (applied.aggregate_type, applied.aggregate_id, applied.user_id) == ("project", "7", 2)


def test_the_actor_defaults_to_the_envelopes_user() -> None:
    login = UserLoggedIn.decode(_envelope("user.login", {}, user_id=5))
    assert (login.user_id, login.login_at) == (5, None)
    applied = ProjectApplied.decode(_envelope("project.applied", {"project_id": 7}, user_id=2))
    assert (applied.applicant_id, applied.owner_id, applied.project_title) == (2, None, None)
    # The data's own value wins over the envelope's.
    assert (
        UserRegistered.decode(_envelope("user.registered", {"user_id": 6}, user_id=5)).user_id == 6
    )


BAD = [
    ("user.registered", {}, "missing required field `user_id`"),
    ("user.registered", {"user_id": "6"}, "Expected `int`, got `str` - at `$.user_id`"),
    ("user.registered", {"user_id": True}, "Expected `int`, got `bool`"),
    ("user.login", {"user_id": 1, "login_at": "yesterday"}, "at `$.login_at`"),
    ("user.login", {"user_id": 1, "login_at": "2030-01-02T03:04:05"}, "at `$.login_at`"),
    ("project.applied", {"applicant_id": 2}, "missing required field `project_id`"),
    ("message.sent", {"sender_id": 1}, "missing required field `recipient_id`"),
]


@pytest.mark.parametrize(("event_type", "data", "says"), BAD)
def test_data_that_does_not_decode_is_an_invalid_event(
    event_type: str, data: dict[str, object], says: str
) -> None:
    contract = next(c for c in CONTRACTS if c.matches(event_type))
    with pytest.raises(InvalidEvent) as raised:
        contract.decode(_envelope(event_type, data))
    assert says in str(raised.value)
    assert str(raised.value).startswith(f"{event_type} data: ")


def test_an_unknown_schema_version_is_an_invalid_event() -> None:
    envelope = _envelope("user.registered", {"user_id": 1}, schema_version=2)
    with pytest.raises(InvalidEvent, match="unknown schema_version 2"):
        UserRegistered.decode(envelope)


def test_a_contract_refuses_another_event_type() -> None:
    with pytest.raises(InvalidEvent, match=r"is not a user\.login event"):
        UserLoggedIn.decode(_envelope("user.registered", {"user_id": 1}))


def test_an_event_without_its_key_cannot_be_produced() -> None:
    with pytest.raises(ValueError, match="needs conversation_id"):
        MessageSent(sender_id=1, recipient_id=2).new_event(TopicSettings())
