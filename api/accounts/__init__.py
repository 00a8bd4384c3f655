"""Accounts: registration and login under /api/v1/auth, the caller's account under
/api/v1/users (`routes`) and their bodies; the SQL is in `core/stores/users`."""
