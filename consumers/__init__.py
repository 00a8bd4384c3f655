"""ConnectIn consumers process."""
