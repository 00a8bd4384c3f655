"""project-events: the owner's project count, and a notification per application."""

from __future__ import annotations

from sqlalchemy import select

from consumers.handlers.fields import acting_user, optional_int, optional_str, required_int
from consumers.handlers.notify import count, notify
from consumers.registry import HandlerContext, HandlerGroup, InvalidEvent
from core.tables import Project

handlers = HandlerGroup(consumer="projects", topic="project")


@handlers.on("project.created")
async def count_project(ctx: HandlerContext) -> None:
    count(ctx, "projects_count", acting_user(ctx.event, "owner_id"))


@handlers.on("project.applied")
async def notify_owner(ctx: HandlerContext) -> None:
    data = ctx.event.data
    project_id = required_int(data, "project_id")
    owner_id = optional_int(data, "owner_id")
    title = optional_str(data, "project_title") or optional_str(data, "title")
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
    applicant_id = acting_user(ctx.event, "applicant_id")
    notify(
        ctx,
        owner_id,
        "project.application",
        f'New application to "{title or f"project {project_id}"}"',
        {
            "project_id": project_id,
            "application_id": optional_int(data, "application_id"),
            "applicant_id": applicant_id,
        },
    )
