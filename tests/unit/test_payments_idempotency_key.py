"""The idempotency keys of Stripe writes (api/payments/idempotency.py): the same request
of the same user gets the same key, anything else a different one, and a client's key
never reaches Stripe as it came."""

from __future__ import annotations

import re

from api.payments.idempotency import idempotency_key

REQUEST = {"amount": 2500, "currency": "usd"}
KEY_SHAPE = re.compile(r"^ci_[0-9a-f]{64}$")


def test_a_retried_request_gets_the_same_key() -> None:
    first = idempotency_key("intent", 7, None, dict(REQUEST))
    again = idempotency_key("intent", 7, None, {"currency": "usd", "amount": 2500})
    assert first == again
    assert first.from_client is False
    assert KEY_SHAPE.match(first.value)


def test_every_part_of_a_derived_key_counts() -> None:
    base = idempotency_key("intent", 7, None, REQUEST)
    others = [
        idempotency_key("subscription", 7, None, REQUEST),
        idempotency_key("intent", 8, None, REQUEST),
        idempotency_key("intent", 7, None, {**REQUEST, "amount": 2501}),
        idempotency_key("intent", 7, None, {**REQUEST, "extra": None}),
        idempotency_key("intent", 7, None, REQUEST, generation=1),
    ]
    assert len({base.value, *(k.value for k in others)}) == 1 + len(others)


def test_a_client_key_is_namespaced_by_operation_and_user() -> None:
    """Stripe keys are per account: user A's "abc" must not be user B's."""
    key = idempotency_key("intent", 7, "abc", REQUEST)
    assert key.from_client is True
    assert KEY_SHAPE.match(key.value)
    assert "abc" not in key.value
    assert key != idempotency_key("intent", 8, "abc", REQUEST)
    assert key != idempotency_key("customer", 7, "abc", REQUEST)
    assert key != idempotency_key("intent", 7, "abd", REQUEST)


def test_a_client_key_ignores_the_request_and_the_generation() -> None:
    """A retry with the client's key returns the same object even if the body changed
    (the claim's request hash, not this key, detects that mismatch)."""
    key = idempotency_key("intent", 7, "abc", REQUEST)
    assert key == idempotency_key("intent", 7, "abc", {"amount": 1}, generation=3)


def test_a_client_key_never_equals_a_derived_one() -> None:
    derived = idempotency_key("intent", 7, None, REQUEST)
    assert idempotency_key("intent", 7, derived.value, REQUEST).value != derived.value


def test_each_step_of_an_operation_has_its_own_stable_key() -> None:
    key = idempotency_key("subscription", 7, None, REQUEST)
    steps = {key.step(name) for name in ("customer", "attach", "subscription")}
    assert len(steps) == 3
    assert key.value not in steps
    assert key.step("attach") == idempotency_key("subscription", 7, None, REQUEST).step("attach")
    assert all(KEY_SHAPE.match(step) for step in steps)
    assert key.step("attach") != idempotency_key("subscription", 8, None, REQUEST).step("attach")
