"""Passwords (argon2id) and access tokens (JWT, HS256).

Tokens are verified by Litestar's `JWTCookieAuth` middleware (see `jwt_auth`): the
`Authorization: Bearer` header first, else the httpOnly `access_token` cookie that
login sets for the same-origin frontend. Verification is stateless: the principal is
the token's `sub`, so authenticating a request costs no database round trip, and a
token once verified is remembered by its exact text until it expires (VerifiedToken).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Self, cast

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


class VerifiedToken(Token):
    """Remembers the tokens it verified, by their exact text and what they were checked
    against, until each expires: a client sends the same token with every request, and
    verifying it (HMAC, claims, the conversion to a Token) cost ~50 µs, 8 % of the write
    route's CPU (`python -m bench api-write` profile). A changed byte is another key,
    so it is verified in full; an entry past its `exp` is dropped and verified again,
    which rejects it. Tokens carry no revocation to miss (stateless, see above)."""

    @classmethod
    def decode(
        cls,
        encoded_token: str,
        secret: str,
        algorithm: str,
        audience: str | Sequence[str] | None = None,
        issuer: str | Sequence[str] | None = None,
        require_claims: Sequence[str] | None = None,
        verify_exp: bool = True,
        verify_nbf: bool = True,
        strict_audience: bool = False,
    ) -> Self:
        key = (
            encoded_token,
            secret,
            algorithm,
            _frozen(audience),
            _frozen(issuer),
            _frozen(require_claims),
            verify_exp,
            verify_nbf,
            strict_audience,
        )
        known = _VERIFIED.get(key)
        if known is not None and known.exp > datetime.now(UTC):
            return cast(Self, known)
        _VERIFIED.pop(key, None)
        token = super().decode(
            encoded_token,
            secret,
            algorithm,
            audience,
            issuer,
            require_claims,
            verify_exp,
            verify_nbf,
            strict_audience,
        )
        if verify_exp:
            if len(_VERIFIED) >= VERIFIED_TOKENS_KEPT:
                # The oldest entry: insertion order.
                del _VERIFIED[next(iter(_VERIFIED))]
            _VERIFIED[key] = token
        return token


# ~1 kB each; at most this many, per API worker.
VERIFIED_TOKENS_KEPT = 4096
_VERIFIED: dict[tuple[object, ...], VerifiedToken] = {}


def _frozen(value: str | Sequence[str] | None) -> str | tuple[str, ...] | None:
    return value if value is None or isinstance(value, str) else tuple(value)


def jwt_auth(auth: AuthSettings, *, exclude: list[str]) -> JWTCookieAuth[Principal, VerifiedToken]:
    return JWTCookieAuth[Principal, VerifiedToken](
        token_cls=VerifiedToken,
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
