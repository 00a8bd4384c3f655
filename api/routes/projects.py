"""Projects and applications to them."""

from __future__ import annotations

from litestar import get, post
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import JSONBody
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from api import events
from api.deps import AppSettings, Caller, DbSession, TraceParent
from api.errors import CONFLICT_MESSAGES, ConflictError, invalid
from api.routes.params import Limit, Offset, PathId
from api.schemas import ApplicationIn, ApplicationOut, ProjectIn, ProjectOut, clean_text
from core.tables import Project, ProjectApplication

PROJECTS: Table = Project.__table__  # type: ignore[assignment]


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


async def insert_project(
    db_session: AsyncSession, owner_id: int, title: str, description: str
) -> Project:
    """One `INSERT ... RETURNING` in Core, the row returned as a detached Project: the
    ORM's unit of work (flush, identity map, refresh) cost a quarter of this route's
    CPU (`python -m bench api-write` profile) for a row the request never reads back."""
    row = (
        await db_session.execute(
            insert(PROJECTS)
            .values(owner_id=owner_id, title=title, description=description)
            .returning(PROJECTS.c.id, PROJECTS.c.created_at)
        )
    ).one()
    return Project(
        id=row.id,
        owner_id=owner_id,
        title=title,
        description=description,
        created_at=row.created_at,
    )


async def _project(db_session: AsyncSession, project_id: int) -> Project:
    project = await db_session.get(Project, project_id)
    if project is None:
        raise NotFoundException(detail=f"project {project_id} not found")
    return project


@post("/api/v1/projects", status_code=201, tags=["projects"])
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


@get("/api/v1/projects", tags=["projects"])
async def list_projects(
    db_session: DbSession, limit: Limit = 50, offset: Offset = 0
) -> list[ProjectOut]:
    """All projects, newest first."""
    rows = await db_session.scalars(
        select(Project).order_by(Project.id.desc()).limit(limit).offset(offset)
    )
    return [project_out(p) for p in rows]


@get("/api/v1/projects/{project_id:int}", tags=["projects"])
async def get_project(project_id: PathId, db_session: DbSession) -> ProjectOut:
    return project_out(await _project(db_session, project_id))


@post("/api/v1/projects/{project_id:int}/applications", status_code=201, tags=["projects"])
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
    already = await db_session.scalar(
        select(ProjectApplication.id).where(
            ProjectApplication.project_id == project_id,
            ProjectApplication.applicant_id == principal.id,
        )
    )
    if already is not None:
        raise ConflictError(detail=CONFLICT_MESSAGES["uq_project_applications_project_id"])
    application = ProjectApplication(
        project_id=project_id, applicant_id=principal.id, cover_letter=cover_letter
    )
    db_session.add(application)
    # A concurrent duplicate fails here on the unique constraint: 409 via the handler.
    await db_session.flush()
    await events.emit(
        db_session,
        settings,
        events.project_applied(settings.kafka.topics, project, application, traceparent),
    )
    return application_out(application)


@get("/api/v1/projects/{project_id:int}/applications", tags=["projects"])
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
    rows = await db_session.scalars(
        select(ProjectApplication)
        .where(ProjectApplication.project_id == project_id)
        .order_by(ProjectApplication.id)
        .limit(limit)
        .offset(offset)
    )
    return [application_out(a) for a in rows]


ROUTES = [create_project, list_projects, get_project, apply, list_applications]
