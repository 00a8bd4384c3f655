"""Direct messages under /api/v1/messages (`routes`), their queries and bodies."""
