"""api.auth.VerifiedToken: a token is verified in full once, then remembered by its
exact text and the checks it passed, and only until it expires."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from litestar.exceptions import NotAuthorizedException

import api.auth
from api.auth import ALGORITHM, REQUIRED_CLAIMS, VerifiedToken, issue_token
from core.settings import AuthSettings

AUTH = AuthSettings(jwt_secret="unit-test-secret-of-at-least-32-bytes!")


def _decode(token: str, auth: AuthSettings = AUTH) -> VerifiedToken:
    """As the API's middleware calls it (api.auth.jwt_auth)."""
    return VerifiedToken.decode(
        token,
        auth.jwt_secret,
        ALGORITHM,
        audience=[auth.audience],
        issuer=[auth.issuer],
        require_claims=list(REQUIRED_CLAIMS),
        strict_audience=True,
    )


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens PyJWT verified during the test, each time it did."""
    seen: list[str] = []
    original: Callable[..., Any] = jwt.decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        # Litestar passes the token by keyword.
        seen.append(kwargs["jwt"] if "jwt" in kwargs else args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    monkeypatch.setattr(api.auth, "_VERIFIED", {})
    return seen


def test_a_token_is_verified_once_then_remembered(verifications: list[str]) -> None:
    token = issue_token(AUTH, 7)
    first, second = _decode(token), _decode(token)
    assert second is first and first.sub == "7"
    assert verifications == [token]


def test_one_changed_byte_is_verified_in_full_and_refused(verifications: list[str]) -> None:
    token = issue_token(AUTH, 7)
    _decode(token)
    header, payload, signature = token.split(".")
    flipped = "A" if signature[5] != "A" else "B"
    forged = f"{header}.{payload}.{signature[:5]}{flipped}{signature[6:]}"
    with pytest.raises(NotAuthorizedException):
        _decode(forged)
    assert verifications == [token, forged]


def test_a_remembered_token_is_refused_under_another_secret(verifications: list[str]) -> None:
    token = issue_token(AUTH, 7)
    _decode(token)
    with pytest.raises(NotAuthorizedException):
        _decode(token, replace(AUTH, jwt_secret="another-secret-of-at-least-32-bytes!!!"))


def test_a_remembered_token_is_refused_once_it_expires(verifications: list[str]) -> None:
    token = issue_token(replace(AUTH, token_ttl_s=1), 7)
    expires = _decode(token).exp
    while datetime.now(UTC) <= expires:
        time.sleep(0.05)
    with pytest.raises(NotAuthorizedException):
        _decode(token)
    assert verifications == [token, token]
    assert not api.auth._VERIFIED, "the expired entry was dropped"


def test_the_memory_is_bounded(verifications: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api.auth, "VERIFIED_TOKENS_KEPT", 8)
    tokens = [issue_token(AUTH, user) for user in range(1, 21)]
    for token in tokens:
        _decode(token)
    assert len(api.auth._VERIFIED) == 8
    # The newest are kept: the last token is not verified again, the first is.
    verifications.clear()
    _decode(tokens[-1])
    _decode(tokens[0])
    assert verifications == [tokens[0]]
