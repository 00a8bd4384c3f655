"""Bodies of the project routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

Title = Annotated[str, Meta(min_length=1, max_length=200)]
LongText = Annotated[str, Meta(max_length=10_000)]


class ProjectIn(msgspec.Struct):
    title: Title
    description: LongText = ""


class ApplicationIn(msgspec.Struct):
    cover_letter: LongText = ""


class ProjectOut(msgspec.Struct):
    id: int
    owner_id: int
    title: str
    description: str
    created_at: datetime


class ApplicationOut(msgspec.Struct):
    id: int
    project_id: int
    applicant_id: int
    cover_letter: str
    created_at: datetime
