"""Accounts: registration and login under /api/v1/auth, the caller's account under
/api/v1/users (`routes`), their queries and bodies."""
