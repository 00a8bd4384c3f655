"""Stripe on the API side: the routes under /api/v1/payments (`routes`), the client,
idempotency keys and claims, webhook verification, the outbox events the routes
write. What the API shares with the payment consumer (Stripe's objects, the
lifecycles, the tables' SQL) is in `core/stripe/`; the events' contracts are in
`core/events/`."""
