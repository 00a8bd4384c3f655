"""What the api, relay and consumers share: settings, database, schema, envelope, outbox writer."""
