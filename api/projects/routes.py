"""Projects and applications to them."""

from __future__ import annotations

from litestar import Router, get, post
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from api import events
from api.deps import AppSettings, Caller, DbSession, TraceParent
from api.errors import CONFLICT_MESSAGES, ConflictError, invalid
from api.fields import clean_text
from api.params import Limit, Offset, PathId
from api.projects.schemas import ApplicationIn, ApplicationOut, ProjectIn, ProjectOut
from core.stores.projects import (
    add_application,
    applications_of,
    has_applied,
    insert_project,
    newest_projects,
    project_by_id,
)
from core.tables import Project, ProjectApplication


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


async def _project(db_session: AsyncSession, project_id: int) -> Project:
    project = await project_by_id(db_session, project_id)
    if project is None:
        raise NotFoundException(detail=f"project {project_id} not found")
    return project


@post("/", status_code=201)
async def create_project(
    data: JSONBody[ProjectIn],
    db_session: DbSession,
    principal: Caller,
    settings: AppSettings,
    traceparent: TraceParent,
) -> ProjectOut:
    """Publish a project; emits `project.created`."""
    project = await insert_project(
        db_session,
        principal.id,
        clean_text("title", data.title),
        clean_text("description", data.description, allow_empty=True),
    )
    await events.emit(
        db_session, settings, events.project_created(settings.kafka.topics, project, traceparent)
    )
    return project_out(project)


@get("/")
async def list_projects(
    db_session: DbSession, limit: Limit = 50, offset: Offset = 0
) -> list[ProjectOut]:
    """All projects, newest first."""
    return [project_out(p) for p in await newest_projects(db_session, limit, offset)]


@get("/{project_id:int}")
async def get_project(project_id: PathId, db_session: DbSession) -> ProjectOut:
    return project_out(await _project(db_session, project_id))


@post("/{project_id:int}/applications", status_code=201)
async def apply(
    project_id: PathId,
    data: JSONBody[ApplicationIn],
    db_session: DbSession,
    principal: Caller,
    settings: AppSettings,
    traceparent: TraceParent,
) -> ApplicationOut:
    """Apply to someone else's project; emits `project.applied` (with `owner_id`, so
    a consumer can notify the owner). Applying twice: 409. Applying to your own
    project: 400, since no later state could make it valid."""
    cover_letter = clean_text("cover_letter", data.cover_letter, allow_empty=True)
    project = await _project(db_session, project_id)
    if project.owner_id == principal.id:
        raise invalid("project_id", "you cannot apply to your own project")
    if await has_applied(db_session, project_id, principal.id):
        raise ConflictError(detail=CONFLICT_MESSAGES["uq_project_applications_project_id"])
    application = await add_application(db_session, project_id, principal.id, cover_letter)
    await events.emit(
        db_session,
        settings,
        events.project_applied(settings.kafka.topics, project, application, traceparent),
    )
    return application_out(application)


@get("/{project_id:int}/applications")
async def list_applications(
    project_id: PathId,
    db_session: DbSession,
    principal: Caller,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[ApplicationOut]:
    """The project's applications; only its owner may read them (else 403)."""
    project = await _project(db_session, project_id)
    if project.owner_id != principal.id:
        raise PermissionDeniedException(detail="only the project's owner can see applications")
    rows = await applications_of(db_session, project_id, limit, offset)
    return [application_out(a) for a in rows]


ROUTER = Router(
    path="/api/v1/projects",
    route_handlers=[create_project, list_projects, get_project, apply, list_applications],
    tags=["projects"],
)
