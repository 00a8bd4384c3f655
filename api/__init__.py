"""ConnectIn api process."""
