"""Projects and applications to them under /api/v1/projects (`routes`) and their
bodies; the SQL is in `core/stores/projects`."""
