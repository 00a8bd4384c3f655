"""project-events: the owner's project count, and a notification per application."""

from __future__ import annotations

from sqlalchemy import select

from consumers.handlers.notify import count, notify
from consumers.registry import HandlerContext, HandlerGroup, InvalidEvent
from core.events.projects import ProjectApplied, ProjectCreated
from core.tables import Project

handlers = HandlerGroup(consumer="projects", topic="project")


@handlers.handle(ProjectCreated)
async def count_project(ctx: HandlerContext, event: ProjectCreated) -> None:
    count(ctx, "projects_count", event.owner_id)


@handlers.handle(ProjectApplied)
async def notify_owner(ctx: HandlerContext, event: ProjectApplied) -> None:
    project_id, owner_id, title = event.project_id, event.owner_id, event.project_title
    if owner_id is None or title is None:
        row = (
            await ctx.session.execute(
                select(Project.owner_id, Project.title).where(Project.id == project_id)
            )
        ).one_or_none()
        if row is None and owner_id is None:
            raise InvalidEvent(f"project {project_id} does not exist and data has no owner_id")
        if row is not None:
            owner_id = owner_id if owner_id is not None else row.owner_id
            title = title or row.title
    assert owner_id is not None  # narrowed above; keeps mypy honest
    notify(
        ctx,
        owner_id,
        "project.application",
        f'New application to "{title or f"project {project_id}"}"',
        {
            "project_id": project_id,
            "application_id": event.application_id,
            "applicant_id": event.applicant_id,
        },
    )
