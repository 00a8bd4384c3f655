"""The caller's own account."""

from __future__ import annotations

from litestar import get
from litestar.exceptions import NotAuthorizedException

from api.deps import Caller, DbSession
from api.routes.auth import user_out
from api.schemas import UserOut
from core.tables import User


@get("/api/v1/users/me", tags=["users"])
async def me(db_session: DbSession, principal: Caller) -> UserOut:
    user = await db_session.get(User, principal.id)
    if user is None:
        # A valid token for an account that no longer exists: make the client log in.
        raise NotAuthorizedException(detail="account not found")
    return user_out(user)


ROUTES = [me]
