"""Direct messages under /api/v1/messages (`routes`) and their bodies;
the SQL is in `core/stores/messages`."""
