"""payment-events: Stripe's events (stored by the API's webhook as `stripe.<type>`)
move payments and subscriptions forward, never backwards (`core/stripe/lifecycle.py`,
architecture invariant 5). A payment that reaches `succeeded` emits
`payment.processed` and notifies its user in the same transaction as the change.

One module per kind of Stripe object: `intents`, `subscriptions`, `invoices` (which
move both); `apply` holds the payment rule they share (on a `change`) and `processed`
the effects of a payment that succeeded."""

from __future__ import annotations

from consumers.handlers.payments import intents, invoices, subscriptions
from consumers.handlers.payments.group import handlers

__all__ = ["handlers", "intents", "invoices", "subscriptions"]
