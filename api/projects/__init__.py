"""Projects and applications to them under /api/v1/projects (`routes`), their queries
and bodies."""
