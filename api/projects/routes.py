"""Projects and applications to them."""

from __future__ import annotations

import msgspec
from litestar import Router, get, post
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from api import events
from api.deps import Ctx, DbSession, StatementCtx
from api.errors import CONFLICT_MESSAGES, ConflictError, invalid
from api.fields import clean_text
from api.params import Limit, Offset, PathId
from api.projects.schemas import ApplicationIn, ApplicationOut, ProjectIn, ProjectOut
from core.db import raw_connection
from core.stores.projects import (
    add_application,
    applications_of,
    has_applied,
    insert_project_with_event,
    newest_projects,
    project_by_id,
)
from core.tables import Project


async def _project(db_session: AsyncSession, project_id: int) -> Project:
    project = await project_by_id(db_session, project_id)
    if project is None:
        raise NotFoundException(detail=f"project {project_id} not found")
    return project


@post("/", status_code=201)
async def create_project(data: JSONBody[ProjectIn], statement_ctx: StatementCtx) -> ProjectOut:
    """Publish a project; emits `project.created`."""
    ctx = statement_ctx
    topics, traceparent = ctx.settings.kafka.topics, ctx.traceparent
    async with raw_connection(ctx.engine) as conn:
        project = await insert_project_with_event(
            conn,
            ctx.principal.id,
            clean_text("title", data.title),
            clean_text("description", data.description, allow_empty=True),
            lambda project: events.project_created(topics, project, traceparent),
            shards=ctx.settings.relay.shards,
        )
    return msgspec.convert(project, ProjectOut, from_attributes=True)


@get("/")
async def list_projects(
    db_session: DbSession, limit: Limit = 50, offset: Offset = 0
) -> list[ProjectOut]:
    """All projects, newest first."""
    rows = await newest_projects(db_session, limit, offset)
    return msgspec.convert(rows, list[ProjectOut], from_attributes=True)


@get("/{project_id:int}")
async def get_project(project_id: PathId, db_session: DbSession) -> ProjectOut:
    project = await _project(db_session, project_id)
    return msgspec.convert(project, ProjectOut, from_attributes=True)


@post("/{project_id:int}/applications", status_code=201)
async def apply(
    project_id: PathId,
    data: JSONBody[ApplicationIn],
    ctx: Ctx,
) -> ApplicationOut:
    """Apply to someone else's project; emits `project.applied` (with `owner_id`, so
    a consumer can notify the owner). Applying twice: 409. Applying to your own
    project: 400, since no later state could make it valid."""
    cover_letter = clean_text("cover_letter", data.cover_letter, allow_empty=True)
    caller = ctx.principal.id
    project = await _project(ctx.session, project_id)
    if project.owner_id == caller:
        raise invalid("project_id", "you cannot apply to your own project")
    if await has_applied(ctx.session, project_id, caller):
        raise ConflictError(detail=CONFLICT_MESSAGES["uq_project_applications_project_id"])
    application = await add_application(ctx.session, project_id, caller, cover_letter)
    await events.emit(
        ctx.session,
        ctx.settings,
        events.project_applied(ctx.settings.kafka.topics, project, application, ctx.traceparent),
    )
    return msgspec.convert(application, ApplicationOut, from_attributes=True)


@get("/{project_id:int}/applications")
async def list_applications(
    project_id: PathId,
    ctx: Ctx,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[ApplicationOut]:
    """The project's applications; only its owner may read them (else 403)."""
    project = await _project(ctx.session, project_id)
    if project.owner_id != ctx.principal.id:
        raise PermissionDeniedException(detail="only the project's owner can see applications")
    rows = await applications_of(ctx.session, project_id, limit, offset)
    return msgspec.convert(rows, list[ApplicationOut], from_attributes=True)


ROUTER = Router(
    path="/api/v1/projects",
    route_handlers=[create_project, list_projects, get_project, apply, list_applications],
    tags=["projects"],
)
