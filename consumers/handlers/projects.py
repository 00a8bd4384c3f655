"""project-events: the owner's project count, and a notification per application."""

from __future__ import annotations

from consumers.handlers.notify import count, notify
from consumers.registry import HandlerContext, HandlerGroup, InvalidEvent
from core.events.projects import ProjectApplied, ProjectCreated
from core.stores import projects

handlers = HandlerGroup(consumer="projects", topic="project")


@handlers.handle(ProjectCreated)
async def count_project(ctx: HandlerContext, event: ProjectCreated) -> None:
    count(ctx, "projects_count", event.owner_id)


@handlers.handle(ProjectApplied)
async def notify_owner(ctx: HandlerContext, event: ProjectApplied) -> None:
    project_id, owner_id, title = event.project_id, event.owner_id, event.project_title
    if owner_id is None or title is None:
        row = await projects.owner_and_title(ctx.session, project_id)
        if row is None and owner_id is None:
            raise InvalidEvent(f"project {project_id} does not exist and data has no owner_id")
        if row is not None:
            stored_owner, stored_title = row
            owner_id = owner_id if owner_id is not None else stored_owner
            title = title or stored_title
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
