"""Stripe on the API side: the client, idempotency keys and claims, webhook
verification, and the payment routes' writes (`api/routes/payments.py`). What the API
shares with the payment consumer (Stripe's objects, the lifecycles, the tables' SQL)
is in `core/stripe/`; the events' contracts are in `core/events/`."""
