"""The /ops page in a real headless browser (Debian's chromium driven by Playwright):
it asks for the token, refuses a wrong one, then shows the database's numbers and
draws the lag chart. Leaves a screenshot in artifacts/ops-page.png."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from tests.support import REPO
from tests.support.api import served_api
from tests.support.kafka import isolate
from tests.support.ops import (
    add_dead_letter,
    add_outbox_rows,
    commit_offsets,
    create_topic,
    db_backlog,
    fake_relay,
    produce,
    with_thresholds,
)

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = REPO / "artifacts" / "ops-page.png"
TOKEN = "page-test-token-41d7"
# Never fetch anything: no component updates, no sync, no field trials phoning home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (/usr/bin/chromium): apt-get install -y chromium",
)


@asynccontextmanager
async def browser_page() -> AsyncIterator[tuple[Page, list[str]]]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1360, "height": 900})
            problems: list[str] = []
            # CSP violations and script errors land here: the page must have none.
            page.on("console", lambda m: _note(problems, m.type, m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            yield page, problems
        finally:
            await browser.close()


def _note(problems: list[str], kind: str, message: str) -> None:
    # The browser logs each 401 it is answered (the page's own, a wrong token's): those
    # are the test's doing. Anything else (a CSP refusal, a script error) is a fault.
    if kind == "error" and "status of 401" not in message:
        problems.append(message)


async def _lagging_group(s: Settings) -> None:
    """A consumer group 'users' 5 + 3 events behind, so the table and chart have data."""
    topic = s.kafka.topics.user
    await asyncio.to_thread(create_topic, s, topic, 3)
    await asyncio.to_thread(produce, s, topic, {0: 12, 1: 9, 2: 4})
    group = f"{s.kafka.transactional_id_prefix}-users"
    await asyncio.to_thread(commit_offsets, s, group, topic, {0: 7, 1: 6, 2: 4})


async def _history_at_least(page: Page, samples: int) -> None:
    await page.wait_for_function(
        "n => JSON.parse(sessionStorage.getItem('connectin.ops.lagHistory') || '[]').length >= n",
        arg=samples,
    )


async def test_ops_page_shows_the_databases_numbers(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = with_thresholds(isolate(settings, "opspage"), max_oldest_s=60)
    s = replace(s, api=replace(s.api, ops_token=TOKEN))
    topic = s.kafka.topics.user
    await add_outbox_rows(clean_db, topic, shard=0, count=17, age_s=95)
    await add_outbox_rows(clean_db, topic, shard=1, count=4, age_s=3)
    await add_outbox_rows(clean_db, s.kafka.topics.project, shard=3, count=2, age_s=8)
    await add_outbox_rows(clean_db, topic, shard=2, count=6, age_s=400, published=True)
    await add_dead_letter(clean_db, topic, error="KeyError: 'project_id' in users handler")
    await _lagging_group(s)
    expected = sum(n for n, _ in (await db_backlog(clean_db)).values())
    assert expected == 23

    async with (
        fake_relay(s, [1, 2, 3]),
        browser_page() as (page, problems),
        served_api(s) as base,
    ):
        response = await page.goto(f"{base}/ops?refresh=1")
        assert response is not None and response.status == 401
        await page.wait_for_selector("#login:not([hidden])")

        await page.fill("#token", "not-the-token")
        await page.click("[data-testid=token-submit]")
        await page.wait_for_function(
            "() => document.getElementById('login-message').textContent.includes('not accepted')"
        )

        await page.fill("#token", TOKEN)
        await page.click("[data-testid=token-submit]")
        await page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
        stored = await page.evaluate("sessionStorage.getItem('connectin.ops.token')")
        assert stored == TOKEN

        shown = await page.text_content("[data-testid=pending-total]")
        assert shown == f"{expected:,}", f"page shows {shown}, database has {expected}"
        shard_rows = await page.locator("#shards tbody tr").all_text_contents()
        assert len(shard_rows) == s.relay.shards
        assert "no leader" in shard_rows[0] and "pid" in shard_rows[1]
        assert await page.text_content("[data-testid=lag-total]") == "8"
        assert await page.text_content("[data-testid=dlq-total]") == "1"
        assert await page.text_content("[data-testid=verdict]") == "Threshold breached"

        # The page refreshes by itself: the group catches up by 5, the page follows.
        await _history_at_least(page, 3)
        group = f"{s.kafka.transactional_id_prefix}-users"
        await asyncio.to_thread(commit_offsets, s, group, topic, {0: 12})
        await page.wait_for_function(
            "() => document.querySelector('[data-testid=lag-total]').textContent === '3'"
        )
        await _history_at_least(page, 6)
        # attached, not "visible": a flat line has a zero-height bounding box.
        await page.wait_for_selector("#chart svg polyline", state="attached")
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)

        # A reload keeps the token (same tab) and goes straight to the numbers.
        await page.reload()
        await page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
        assert await page.is_hidden("#login")
    assert problems == [], problems
