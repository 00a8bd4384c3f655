"""ConnectIn relay process."""
