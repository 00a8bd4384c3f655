"""project-events, keyed by the project, so a project's creation is always seen before
its applications."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from core.events.contract import DomainEvent


class ProjectCreated(DomainEvent, frozen=True, kw_only=True):
    """A user published a project. The projects consumer counts it for the owner."""

    event_type = "project.created"
    topic = "project"
    aggregate_type = "project"
    key = "project_id"
    actor = "owner_id"

    owner_id: Annotated[int, Meta(description="defaults to the envelope's user_id")]
    project_id: int | None = None
    title: str | None = None


class ProjectApplied(DomainEvent, frozen=True, kw_only=True):
    """A user applied to a project. The projects consumer notifies the owner.

    The project's title is `project_title` (`title` belongs to `project.created`). No
    producer of this platform ever wrote `title` into this event, so none can sit in
    the outbox or a topic; an event made elsewhere that carries only `title` still
    reads correctly, because an absent `project_title` is looked up in `projects`.
    """

    event_type = "project.applied"
    topic = "project"
    aggregate_type = "project"
    key = "project_id"
    actor = "applicant_id"

    project_id: int
    applicant_id: Annotated[int, Meta(description="defaults to the envelope's user_id")]
    application_id: int | None = None
    owner_id: Annotated[int | None, Meta(description="looked up in projects when absent")] = None
    project_title: Annotated[str | None, Meta(description="looked up in projects when absent")] = (
        None
    )
