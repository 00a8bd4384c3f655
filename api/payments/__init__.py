"""Stripe payments on the API side: the routes under /api/v1/payments (`routes`), the
client, idempotency keys, webhook verification, the rows and outbox events the routes
write and the rows they read (`queries`)."""
