"""The payment consumer's handler group, which the handler modules register on."""

from __future__ import annotations

from consumers.registry import HandlerGroup

handlers = HandlerGroup(consumer="payments", topic="payment")
