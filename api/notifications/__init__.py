"""The caller's notifications under /api/v1/notifications (`routes`), their queries and
bodies."""
