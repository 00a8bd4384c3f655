"""The one owner of the SQL on each aggregate's tables, used by the API and the
consumers alike: `users`, `projects` (with their applications), `messages` and
`notifications`. The outbox, relays, dead letters and Stripe's tables have theirs in
`core.outbox_store`, `core.leadership`, `core.dead_letters` and `core.stripe.store`."""
