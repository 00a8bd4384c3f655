"""The `connectin` command: one CLI that starts each process and manages local services."""
