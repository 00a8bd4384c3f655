"""Bodies of the project routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from core.tables import Project, ProjectApplication

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


def project_out(project: Project) -> ProjectOut:
    return ProjectOut(
        id=project.id,
        owner_id=project.owner_id,
        title=project.title,
        description=project.description,
        created_at=project.created_at,
    )


def application_out(application: ProjectApplication) -> ApplicationOut:
    return ApplicationOut(
        id=application.id,
        project_id=application.project_id,
        applicant_id=application.applicant_id,
        cover_letter=application.cover_letter,
        created_at=application.created_at,
    )
