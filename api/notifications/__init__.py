"""The caller's notifications under /api/v1/notifications (`routes`) and their
bodies; the SQL is in `core/stores/notifications`."""
