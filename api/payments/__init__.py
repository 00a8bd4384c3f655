"""Stripe on the API side: the client, idempotency keys, webhook verification, and
the rows and outbox events the payment routes write (`api/routes/payments.py`)."""
