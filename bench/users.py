"""Callers for the API benchmarks: users inserted straight into the database (argon2
registration would cost seconds of CPU for nothing measured) and access tokens issued
with the API's own signer, so requests pass the real JWT middleware."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import asyncpg

from api.auth import issue_token
from bench.loadgen import Target
from core.settings import Settings

PROJECTS = "/api/v1/projects"
# ~300 bytes of JSON per project, like the outbox drain's events.
DESCRIPTION = "A benchmark project. " * 10


async def make_users(settings: Settings, count: int) -> list[tuple[int, str]]:
    """(user id, bearer token) for `count` new users."""
    tag = uuid.uuid4().hex[:8]
    conn = await asyncpg.connect(settings.database.libpq_url)
    try:
        ids = await conn.fetch(
            """
            INSERT INTO users (username, email, password_hash)
            SELECT 'bench' || $1 || '_' || g, 'bench' || $1 || '_' || g || '@example.com', 'x'
            FROM generate_series(1, $2) AS g
            RETURNING id
            """,
            tag,
            count,
        )
    finally:
        await conn.close()
    return [(int(r["id"]), issue_token(settings.auth, int(r["id"]))) for r in ids]


def project_requests(
    target: Target, users: list[tuple[int, str]], path: str = PROJECTS, label: str = "p"
) -> Callable[[int], bytes]:
    """request(i): POST a new project as user i % len(users) (many owners, so the
    consumer's per-owner counter update does not serialize on one row)."""
    headers = [{"Authorization": f"Bearer {token}"} for _, token in users]

    def request(i: int) -> bytes:
        body = json.dumps({"title": f"{label} {i}", "description": DESCRIPTION}).encode()
        return target.post(path, body, headers[i % len(headers)])

    return request
