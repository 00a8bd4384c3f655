"""Helpers and fixtures shared by the test folders, loaded through `pytest_plugins`
(tests/conftest.py) so pytest registers their fixtures.

unit/ tests use none of the services; integration/ and crash/ tests run against real
Postgres, Kafka and localstripe."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
