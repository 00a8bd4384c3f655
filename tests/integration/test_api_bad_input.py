"""Bad input (invariant 6): every case answers the expected 4xx with a JSON error and
writes nothing: no domain row, no outbox row, no sequence, no read mark."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from tests.support.api import PASSWORD, bearer, row_counts


@dataclass(frozen=True)
class Raw:
    body: bytes
    content_type: str = "application/json"


class Oversize:
    """A JSON body one byte over the configured limit."""

    def __init__(self, streamed: bool = False) -> None:
        self.streamed = streamed


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: Any
    who: str | None
    status: int


REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
PROJECTS = "/api/v1/projects"
MESSAGES = "/api/v1/messages"
OK_USER = {"username": "newcomer", "email": "newcomer@example.com", "password": PASSWORD}
BIG = 2**63


def nested(levels: int) -> bytes:
    """A register body nested `levels` deep: the object, then arrays in its username."""
    return b'{"username": ' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"


# ~2 KB that made msgspec's recursive decoder raise RecursionError (a 500 and a
# traceback per request in the log) before the depth limit.
DEEP = nested(1000)


def _user(**changes: Any) -> dict[str, Any]:
    body = {**OK_USER, **changes}
    return {k: v for k, v in body.items() if v is not None}


CASES: dict[str, Case] = {
    # registration
    "register: missing username": Case("POST", REGISTER, _user(username=None), None, 400),
    "register: missing email": Case("POST", REGISTER, _user(email=None), None, 400),
    "register: missing password": Case("POST", REGISTER, _user(password=None), None, 400),
    "register: username not a string": Case("POST", REGISTER, _user(username=42), None, 400),
    "register: username too short": Case("POST", REGISTER, _user(username="ab"), None, 400),
    "register: username too long": Case("POST", REGISTER, _user(username="a" * 51), None, 400),
    "register: username with spaces": Case("POST", REGISTER, _user(username="a b c"), None, 400),
    "register: password of 7": Case("POST", REGISTER, _user(password="1234567"), None, 400),
    "register: password of 129": Case("POST", REGISTER, _user(password="p" * 129), None, 400),
    "register: not an email": Case("POST", REGISTER, _user(email="newcomer"), None, 400),
    "register: email without tld": Case("POST", REGISTER, _user(email="a@b"), None, 400),
    "register: email with NUL": Case("POST", REGISTER, _user(email="a\x00@b.com"), None, 400),
    "register: email too long": Case(
        "POST", REGISTER, _user(email="a" * 250 + "@b.com"), None, 400
    ),
    "register: duplicate email": Case(
        "POST", REGISTER, _user(email="ALICE@example.com"), None, 409
    ),
    "register: duplicate username": Case("POST", REGISTER, _user(username="alice"), None, 409),
    "register: malformed JSON": Case("POST", REGISTER, Raw(b'{"username": "x",'), None, 400),
    "register: JSON array": Case("POST", REGISTER, [OK_USER], None, 400),
    "register: JSON null": Case("POST", REGISTER, Raw(b"null"), None, 400),
    # Only JSON, so another site's form cannot register or log anyone in (CSRF).
    "register: form encoded": Case(
        "POST",
        REGISTER,
        Raw(b"username=x&email=x@y.com&password=12345678", "application/x-www-form-urlencoded"),
        None,
        403,
    ),
    "register: JSON sent as text/plain": Case(
        "POST", REGISTER, Raw(json.dumps(OK_USER).encode(), "text/plain"), None, 403
    ),
    "register: username with a trailing newline": Case(
        "POST", REGISTER, _user(username="newcomer\n"), None, 400
    ),
    "register: nested 1000 levels": Case("POST", REGISTER, Raw(DEEP), None, 400),
    "register: nested 65 levels": Case("POST", REGISTER, Raw(nested(65)), None, 400),
    "register: oversize body": Case("POST", REGISTER, Oversize(), None, 413),
    "register: oversize streamed": Case("POST", REGISTER, Oversize(streamed=True), None, 413),
    # login
    "login: missing password": Case("POST", LOGIN, {"email": "alice@example.com"}, None, 400),
    "login: email not a string": Case("POST", LOGIN, {"email": 1, "password": "x"}, None, 400),
    "login: nested 1000 levels": Case("POST", LOGIN, Raw(DEEP), None, 400),
    "login: JSON sent as text/plain": Case(
        "POST",
        LOGIN,
        Raw(
            b'{"email": "alice@example.com", "password": "' + PASSWORD.encode() + b'"}',
            "text/plain",
        ),
        None,
        403,
    ),
    "login: form encoded": Case(
        "POST",
        LOGIN,
        Raw(b"email=alice%40example.com&password=x", "application/x-www-form-urlencoded"),
        None,
        403,
    ),
    # projects
    "project: no token": Case("POST", PROJECTS, {"title": "t"}, None, 401),
    "project: missing title": Case("POST", PROJECTS, {"description": "d"}, "alice", 400),
    "project: title not a string": Case("POST", PROJECTS, {"title": 5}, "alice", 400),
    "project: blank title": Case("POST", PROJECTS, {"title": "   "}, "alice", 400),
    "project: title of 201": Case("POST", PROJECTS, {"title": "t" * 201}, "alice", 400),
    "project: NUL in description": Case(
        "POST", PROJECTS, {"title": "t", "description": "a\x00b"}, "alice", 400
    ),
    "project: description too long": Case(
        "POST", PROJECTS, {"title": "t", "description": "d" * 10_001}, "alice", 400
    ),
    "project: oversize body": Case("POST", PROJECTS, Oversize(), "alice", 413),
    "project: unknown id": Case("GET", PROJECTS + "/987654321", None, "alice", 404),
    "project: id zero": Case("GET", PROJECTS + "/0", None, "alice", 400),
    "project: negative id": Case("GET", PROJECTS + "/-3", None, "alice", 400),
    "project: id beyond bigint": Case("GET", f"{PROJECTS}/{BIG}", None, "alice", 400),
    "project: id not a number": Case("GET", PROJECTS + "/abc", None, "alice", 404),
    "projects: limit too large": Case("GET", PROJECTS + "?limit=1000", None, "alice", 400),
    "projects: limit not a number": Case("GET", PROJECTS + "?limit=x", None, "alice", 400),
    "projects: DELETE": Case("DELETE", PROJECTS, None, "alice", 405),
    # applications
    "apply: unknown project": Case("POST", PROJECTS + "/987654321/applications", {}, "bob", 404),
    "apply: own project": Case("POST", PROJECTS + "/{project}/applications", {}, "alice", 400),
    "apply: twice": Case("POST", PROJECTS + "/{project}/applications", {}, "bob", 409),
    "apply: cover letter not a string": Case(
        "POST", PROJECTS + "/{project}/applications", {"cover_letter": []}, "carol", 400
    ),
    "apply: no token": Case("POST", PROJECTS + "/{project}/applications", {}, None, 401),
    "applications: not the owner": Case(
        "GET", PROJECTS + "/{project}/applications", None, "bob", 403
    ),
    "applications: unknown project": Case(
        "GET", PROJECTS + "/987654321/applications", None, "alice", 404
    ),
    # messages
    "message: unknown recipient": Case(
        "POST", MESSAGES, {"recipient_id": 987654321, "body": "hi"}, "bob", 404
    ),
    "message: to yourself": Case(
        "POST", MESSAGES, {"recipient_id": "{bob}", "body": "hi"}, "bob", 400
    ),
    "message: missing body": Case("POST", MESSAGES, {"recipient_id": "{alice}"}, "bob", 400),
    "message: empty body": Case(
        "POST", MESSAGES, {"recipient_id": "{alice}", "body": ""}, "bob", 400
    ),
    "message: blank body": Case(
        "POST", MESSAGES, {"recipient_id": "{alice}", "body": " \n "}, "bob", 400
    ),
    "message: body of 5001": Case(
        "POST", MESSAGES, {"recipient_id": "{alice}", "body": "b" * 5001}, "bob", 400
    ),
    "message: recipient not a number": Case(
        "POST", MESSAGES, {"recipient_id": "abc", "body": "hi"}, "bob", 400
    ),
    "message: recipient zero": Case(
        "POST", MESSAGES, {"recipient_id": 0, "body": "hi"}, "bob", 400
    ),
    "message: recipient beyond bigint": Case(
        "POST", MESSAGES, {"recipient_id": BIG, "body": "hi"}, "bob", 400
    ),
    "message: recipient fractional": Case(
        "POST", MESSAGES, {"recipient_id": 1.5, "body": "hi"}, "bob", 400
    ),
    # Strict types: an id is a JSON integer, not a string or a float that looks like one.
    "message: recipient as a numeric string": Case(
        "POST", MESSAGES, {"recipient_id": "{alice_text}", "body": "hi"}, "bob", 400
    ),
    "message: recipient as a whole float": Case(
        "POST", MESSAGES, {"recipient_id": "{alice_float}", "body": "hi"}, "bob", 400
    ),
    "message: recipient in exponent notation": Case(
        "POST", MESSAGES, Raw(b'{"recipient_id": 1e0, "body": "hi"}'), "bob", 400
    ),
    "message: nested 1000 levels": Case("POST", MESSAGES, Raw(DEEP), "bob", 400),
    "message: recipient null": Case(
        "POST", MESSAGES, {"recipient_id": None, "body": "hi"}, "bob", 400
    ),
    "message: no token": Case("POST", MESSAGES, {"recipient_id": 1, "body": "hi"}, None, 401),
    "messages: with_user zero": Case("GET", MESSAGES + "?with_user=0", None, "bob", 400),
    # notifications
    "notification: someone else's": Case(
        "POST", "/api/v1/notifications/{notification}/read", None, "bob", 404
    ),
    "notification: unknown": Case(
        "POST", "/api/v1/notifications/987654321/read", None, "alice", 404
    ),
    "notification: id zero": Case("POST", "/api/v1/notifications/0/read", None, "alice", 400),
    "notifications: no token": Case("POST", "/api/v1/notifications/read-all", None, None, 401),
    "unknown path": Case("GET", "/api/v1/nothing-here", None, "alice", 404),
}


@pytest.fixture
async def world(client: httpx.AsyncClient, clean_db: AsyncEngine) -> dict[str, Any]:
    """alice owns a project bob applied to and has an unread notification; carol exists."""
    world: dict[str, Any] = {}
    for name in ("alice", "bob", "carol"):
        response = await client.post(
            REGISTER,
            json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
        )
        world[name] = response.json()["id"]
        login = await client.post(
            LOGIN, json={"email": f"{name}@example.com", "password": PASSWORD}
        )
        world[f"{name}_auth"] = bearer(login.json()["access_token"])
    client.cookies.clear()
    world["alice_text"] = str(world["alice"])
    world["alice_float"] = float(world["alice"])
    project = await client.post(PROJECTS, json={"title": "p"}, headers=world["alice_auth"])
    world["project"] = project.json()["id"]
    applied = await client.post(
        f"{PROJECTS}/{world['project']}/applications", json={}, headers=world["bob_auth"]
    )
    assert applied.status_code == 201
    async with clean_db.begin() as conn:
        world["notification"] = (
            await conn.execute(
                text(
                    "INSERT INTO notifications (user_id, kind, title) "
                    "VALUES (:u, 'welcome', 'hi') RETURNING id"
                ),
                {"u": world["alice"]},
            )
        ).scalar_one()
    return world


def _fill(value: Any, world: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return world[value[1:-1]]
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    return value


async def _send(
    client: httpx.AsyncClient, case: Case, world: dict[str, Any], limit: int
) -> httpx.Response:
    path = case.path.format(**world)
    headers = dict(world[f"{case.who}_auth"]) if case.who else {}
    body = case.body
    if isinstance(body, Oversize):
        blob = b'{"title": "' + b"x" * limit + b'"}'
        headers["content-type"] = "application/json"
        if not body.streamed:
            return await client.request(case.method, path, content=blob, headers=headers)

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(blob), 65_536):
                yield blob[start : start + 65_536]

        return await client.request(case.method, path, content=chunks(), headers=headers)
    if isinstance(body, Raw):
        headers["content-type"] = body.content_type
        return await client.request(case.method, path, content=body.body, headers=headers)
    if body is None:
        return await client.request(case.method, path, headers=headers)
    return await client.request(case.method, path, json=_fill(body, world), headers=headers)


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_input_is_a_4xx_and_writes_nothing(
    client: httpx.AsyncClient,
    clean_db: AsyncEngine,
    settings: Settings,
    world: dict[str, Any],
    name: str,
) -> None:
    case = CASES[name]
    before = await row_counts(clean_db)
    response = await _send(client, case, world, settings.api.max_body_bytes)
    assert response.status_code == case.status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and body["detail"], body
    assert await row_counts(clean_db) == before


async def test_the_world_fixture_requests_are_valid(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    """The matrix's 4xx are caused by the one defect each case introduces: the same
    requests without it succeed."""
    ok = [
        ("POST", REGISTER, OK_USER, None),
        ("POST", PROJECTS, {"title": "t", "description": "d"}, "alice"),
        ("POST", f"{PROJECTS}/{world['project']}/applications", {}, "carol"),
        ("POST", MESSAGES, {"recipient_id": world["alice"], "body": "hi"}, "bob"),
        ("GET", f"{PROJECTS}/{world['project']}/applications", None, "alice"),
        ("POST", f"/api/v1/notifications/{world['notification']}/read", None, "alice"),
    ]
    for method, path, body, who in ok:
        headers = world[f"{who}_auth"] if who else {}
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code in (200, 201), (path, response.text)


async def test_deep_nesting_is_refused_before_decoding_and_logs_no_traceback(
    client: httpx.AsyncClient, clean_db: AsyncEngine, capfd: pytest.CaptureFixture[str]
) -> None:
    before = await row_counts(clean_db)
    for path in (REGISTER, LOGIN):
        response = await client.post(
            path, content=DEEP, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert "nested deeper than 64 levels" in response.json()["detail"]
    # 64 levels are still decoded (and refused only because a username is a string).
    response = await client.post(
        REGISTER, content=nested(64), headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "nested deeper" not in response.json()["detail"]
    out, err = capfd.readouterr()
    for text_ in (out, err):
        assert "Traceback" not in text_ and "RecursionError" not in text_
        assert "unhandled error" not in text_
    assert await row_counts(clean_db) == before


async def test_a_caller_deleted_after_login_is_a_404_and_writes_nothing(
    client: httpx.AsyncClient, clean_db: AsyncEngine, world: dict[str, Any]
) -> None:
    """The token still verifies, but the row it names is gone: the insert's foreign
    key fails. Creating a project and sending a message write on a bare asyncpg
    connection (one statement each), applying in a session (SQLAlchemy): every error
    maps to the same answer, and the sender's key failing is not taken for an unknown
    recipient."""
    async with clean_db.begin() as conn:
        await conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": world["carol"]})
    before = await row_counts(clean_db)
    writes = [
        (PROJECTS, {"title": "t", "description": "d"}),
        (MESSAGES, {"recipient_id": world["alice"], "body": "hi"}),
        (f"{PROJECTS}/{world['project']}/applications", {}),
    ]
    for path, body in writes:
        response = await client.post(path, json=body, headers=world["carol_auth"])
        assert response.status_code == 404, (path, response.text)
        assert response.json() == {
            "error": "not_found",
            "detail": "a referenced resource does not exist",
        }
    unknown = await client.post(
        MESSAGES, json={"recipient_id": 987654321, "body": "hi"}, headers=world["bob_auth"]
    )
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "user 987654321 not found"
    assert await row_counts(clean_db) == before
