"""The projects and project_applications tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import next_id
from core.outbox import InsertWithEvent, NewEvent, insert_with_event
from core.tables import Project, ProjectApplication

# A project's id is drawn before its row is written: its event, written by the same
# statement (InsertWithEvent), is keyed by the id and carries it.
_INSERT = """
    INSERT INTO projects (id, owner_id, title, description) VALUES ($1, $2, $3, $4)
    RETURNING created_at
"""
_INSERT_WITH_EVENT = InsertWithEvent.of(_INSERT, domain_params=4)


async def insert_project_with_event(
    conn: asyncpg.Connection,
    owner_id: int,
    title: str,
    description: str,
    event_of: Callable[[Project], NewEvent],
    *,
    shards: int,
) -> Project:
    """The project row and its event (`event_of` the project, which has everything but
    `created_at` set) in one statement on `conn`, outside any transaction: two round
    trips in all. The session, BEGIN, COMMIT and the ORM cost this route more CPU than
    the statements themselves (`python -m bench api-write`, README)."""
    project = Project(
        id=await next_id(conn, "projects"), owner_id=owner_id, title=title, description=description
    )
    row, _ = await insert_with_event(
        conn,
        _INSERT_WITH_EVENT,
        (project.id, owner_id, title, description),
        event_of(project),
        shards=shards,
    )
    project.created_at = row["created_at"]
    return project


async def insert_project(
    conn: asyncpg.Connection, owner_id: int, title: str, description: str
) -> Project:
    """The same row by the same statements minus the event: the floor `bench
    api-write` measures the outbox against."""
    project_id = await next_id(conn, "projects")
    created_at = await conn.fetchval(_INSERT, project_id, owner_id, title, description)
    return Project(
        id=project_id,
        owner_id=owner_id,
        title=title,
        description=description,
        created_at=created_at,
    )


async def project_by_id(db_session: AsyncSession, project_id: int) -> Project | None:
    return await db_session.get(Project, project_id)


async def owner_and_title(db_session: AsyncSession, project_id: int) -> tuple[int, str] | None:
    row = (
        await db_session.execute(
            select(Project.owner_id, Project.title).where(Project.id == project_id)
        )
    ).one_or_none()
    return None if row is None else (row.owner_id, row.title)


async def newest_projects(db_session: AsyncSession, limit: int, offset: int) -> Sequence[Project]:
    rows = await db_session.scalars(
        select(Project).order_by(Project.id.desc()).limit(limit).offset(offset)
    )
    return rows.all()


async def has_applied(db_session: AsyncSession, project_id: int, applicant_id: int) -> bool:
    already = await db_session.scalar(
        select(ProjectApplication.id).where(
            ProjectApplication.project_id == project_id,
            ProjectApplication.applicant_id == applicant_id,
        )
    )
    return already is not None


async def add_application(
    db_session: AsyncSession, project_id: int, applicant_id: int, cover_letter: str
) -> ProjectApplication:
    application = ProjectApplication(
        project_id=project_id, applicant_id=applicant_id, cover_letter=cover_letter
    )
    db_session.add(application)
    # A concurrent duplicate fails here on the unique constraint: 409 via the handler.
    await db_session.flush()
    return application


async def applications_of(
    db_session: AsyncSession, project_id: int, limit: int, offset: int
) -> Sequence[ProjectApplication]:
    rows = await db_session.scalars(
        select(ProjectApplication)
        .where(ProjectApplication.project_id == project_id)
        .order_by(ProjectApplication.id)
        .limit(limit)
        .offset(offset)
    )
    return rows.all()
