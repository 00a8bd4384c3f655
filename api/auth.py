"""Passwords (argon2id) and access tokens (JWT, HS256).

Tokens are verified by Litestar's `JWTCookieAuth` middleware (see `jwt_auth`): the
`Authorization: Bearer` header first, else the httpOnly `access_token` cookie that
login sets for the same-origin frontend. Verification is stateless: the principal is
the token's `sub`, so authenticating a request costs no database round trip.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import jwt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from litestar.connection import ASGIConnection
from litestar.security.jwt import JWTCookieAuth, Token

from api.fields import MAX_ID
from core.settings import AuthSettings

ALGORITHM = "HS256"
COOKIE_NAME = "access_token"
EXCLUDE_FROM_AUTH = "exclude_from_auth"
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")

# OWASP Password Storage Cheat Sheet, argon2id: m=19 MiB, t=2, p=1.
_HASHER = PasswordHasher(
    time_cost=2, memory_cost=19_456, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    id: int


async def hash_password(password: str) -> str:
    # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
    return await asyncio.to_thread(_HASHER.hash, password)


@cache
def _dummy_hash() -> str:
    return _HASHER.hash(uuid.uuid4().hex)


def _verify(stored_hash: str | None, password: str) -> bool:
    # Unknown emails still pay for one verification, so response time does not reveal
    # which emails are registered.
    try:
        _HASHER.verify(stored_hash or _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return stored_hash is not None


async def verify_password(stored_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(_verify, stored_hash, password)


def needs_rehash(stored_hash: str) -> bool:
    return _HASHER.check_needs_rehash(stored_hash)


def issue_token(auth: AuthSettings, user_id: int, *, now: datetime | None = None) -> str:
    issued = (now or datetime.now(UTC)).replace(microsecond=0)
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iss": auth.issuer,
        "aud": auth.audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + timedelta(seconds=auth.token_ttl_s),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, auth.jwt_secret, algorithm=ALGORITHM)


async def retrieve_principal(
    token: Token, _: ASGIConnection[Any, Any, Any, Any]
) -> Principal | None:
    # Signature, algorithm, iss, aud and exp were checked by the middleware already.
    if not token.sub.isdigit() or not 0 < int(token.sub) <= MAX_ID:
        return None
    return Principal(id=int(token.sub))


def jwt_auth(auth: AuthSettings, *, exclude: list[str]) -> JWTCookieAuth[Principal, Token]:
    return JWTCookieAuth[Principal, Token](
        token_secret=auth.jwt_secret,
        retrieve_user_handler=retrieve_principal,
        algorithm=ALGORITHM,
        key=COOKIE_NAME,
        samesite="lax",
        default_token_expiration=timedelta(seconds=auth.token_ttl_s),
        accepted_issuers=[auth.issuer],
        accepted_audiences=[auth.audience],
        require_claims=list(REQUIRED_CLAIMS),
        strict_audience=True,
        exclude=exclude,
        exclude_opt_key=EXCLUDE_FROM_AUTH,
    )
