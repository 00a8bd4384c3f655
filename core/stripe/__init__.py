"""What the platform knows about Stripe, shared by the API's webhook and the payment
consumer: the objects it reads (`objects`), the snapshot event (`event`), the status
lifecycles (`lifecycle`), the event types it handles (`event_types`), and the one store
per table of Stripe's objects (`store`)."""
