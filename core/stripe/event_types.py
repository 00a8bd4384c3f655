"""The Stripe event types the payment consumer acts on, in Stripe's names (ours are
`stripe.<name>`, see `event.event_type_of`). The webhook stores every type Stripe
sends; the others are recorded as processed and change nothing."""

from __future__ import annotations

from collections.abc import Mapping

from core.stripe.lifecycle import SUCCEEDED

PAYMENT_INTENT = tuple(
    f"payment_intent.{name}"
    for name in (
        "created",
        "processing",
        "requires_action",
        "amount_capturable_updated",
        "partially_funded",
        "payment_failed",
        "succeeded",
        "canceled",
    )
)
SUBSCRIPTION = tuple(
    f"customer.subscription.{name}"
    for name in (
        "created",
        "updated",
        "deleted",
        "paused",
        "resumed",
        "trial_will_end",
        "pending_update_applied",
        "pending_update_expired",
    )
)
# What an invoice event says about the payment intent collecting it. The other invoice
# events change neither a payment nor a subscription.
INVOICE_PAYMENT_STATUS: Mapping[str, str] = {
    "invoice.paid": SUCCEEDED,
    "invoice.payment_succeeded": SUCCEEDED,
    "invoice.payment_failed": "requires_payment_method",
    "invoice.payment_action_required": "requires_action",
    "invoice.voided": "canceled",
}
INVOICE = tuple(
    sorted(
        {
            *INVOICE_PAYMENT_STATUS,
            *(
                f"invoice.{name}"
                for name in (
                    "created",
                    "deleted",
                    "finalization_failed",
                    "finalized",
                    "marked_uncollectible",
                    "overdue",
                    "overpaid",
                    "sent",
                    "upcoming",
                    "updated",
                    "will_be_due",
                )
            ),
        }
    )
)
