"""The API in the test's own event loop behind httpx's ASGI transport, so tests can
send truly concurrent requests; its lifespan creates and disposes its engine. The
`client` fixture serves the app on `api_settings`, which a module overrides to change
them. `served_api` serves it behind uvicorn on a real socket, for clients that need one
(localstripe's webhooks, a browser, schemathesis).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import pytest
import uvicorn
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from core.settings import Settings
from tests.support.ports import free_port

# https: outside development the login cookie is Secure, and httpx (like browsers)
# sends Secure cookies over https only.
BASE_URL = "https://testserver"
PASSWORD = "correct horse battery"
SERVER_START_TIMEOUT_S = 20.0
COUNTED_TABLES = (
    "users",
    "projects",
    "project_applications",
    "messages",
    "notifications",
    "outbox",
    "outbox_key_sequences",
)


@asynccontextmanager
async def running(app: Litestar) -> AsyncIterator[None]:
    """The app's lifespan in a task of its own: pytest-asyncio may finish a fixture in
    another task than it started it, which anyio's cancel scopes do not allow."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def serve() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(serve())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        await task  # raises the start-up error
    try:
        yield
    finally:
        stop.set()
        await task


@asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    # Litestar types its ASGI signature more narrowly than httpx's generic one.
    transport = httpx.ASGITransport(app=cast(Any, app))
    async with running(app), httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    """The settings the `client` fixture's app runs on."""
    return settings


@pytest.fixture
async def client(api_settings: Settings, clean_db: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """The app on `api_settings`, on an empty schema."""
    async with api_client(api_settings) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(
    client: httpx.AsyncClient,
    name: str | None = None,
    password: str = PASSWORD,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    name = name or f"u{uuid.uuid4().hex[:10]}"
    response = await client.post(
        "/api/v1/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": password},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(
    client: httpx.AsyncClient,
    email: str,
    password: str = PASSWORD,
    headers: dict[str, str] | None = None,
) -> str:
    response = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    # The tests pass tokens explicitly; a stored cookie would authenticate by itself.
    client.cookies.clear()
    return token


async def user_with_token(client: httpx.AsyncClient) -> tuple[dict[str, Any], str]:
    user = await register(client)
    return user, await login(client, user["email"])


async def row_counts(engine: AsyncEngine) -> dict[str, int]:
    counts: dict[str, int] = {}
    async with engine.connect() as conn:
        for table in COUNTED_TABLES:
            counts[table] = (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
        counts["notifications_read"] = (
            await conn.execute(text("SELECT count(*) FROM notifications WHERE read_at IS NOT NULL"))
        ).scalar_one()
    return counts


async def outbox_rows(engine: AsyncEngine, event_type: str | None = None) -> list[Any]:
    query = "SELECT * FROM outbox"
    if event_type is not None:
        query += " WHERE event_type = :event_type"
    async with engine.connect() as conn:
        result = await conn.execute(text(query + " ORDER BY id"), {"event_type": event_type})
        return list(result.mappings())


@asynccontextmanager
async def served_api(s: Settings) -> AsyncIterator[str]:
    """The real app behind uvicorn on a free port, in this event loop; its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(s),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        proxy_headers=False,  # as `connectin api` runs it
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("the API server stopped during start-up")
        if time.monotonic() > deadline:
            raise TimeoutError("the API server did not start")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
