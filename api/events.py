"""One builder per domain event the API emits, each from its contract (`core/events/`,
which also says how each is keyed), and `emit`, which writes it to the outbox in the
request's transaction (architecture invariant 1). Routes whose whole write is one row
hand the builder to their store instead, which writes row and event in one statement
(core.outbox.insert_with_event)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core.events.messages import PREVIEW_CHARS, MessageSent, conversation_id
from core.events.projects import ProjectApplied, ProjectCreated
from core.events.users import UserLoggedIn, UserRegistered
from core.outbox import NewEvent, StoredEvent, enqueue
from core.settings import Settings, TopicSettings
from core.tables import Message, Project, ProjectApplication, User


async def emit(session: AsyncSession, settings: Settings, event: NewEvent) -> StoredEvent:
    return await enqueue(session, event, shards=settings.relay.shards)


def user_registered(topics: TopicSettings, user: User, traceparent: str | None) -> NewEvent:
    return UserRegistered(user_id=user.id, username=user.username, email=user.email).new_event(
        topics, traceparent
    )


def user_login(
    topics: TopicSettings, user: User, at: datetime, traceparent: str | None
) -> NewEvent:
    return UserLoggedIn(user_id=user.id, username=user.username, login_at=at).new_event(
        topics, traceparent
    )


def project_created(topics: TopicSettings, project: Project, traceparent: str | None) -> NewEvent:
    return ProjectCreated(
        project_id=project.id, owner_id=project.owner_id, title=project.title
    ).new_event(topics, traceparent)


def project_applied(
    topics: TopicSettings,
    project: Project,
    application: ProjectApplication,
    traceparent: str | None,
) -> NewEvent:
    return ProjectApplied(
        application_id=application.id,
        project_id=project.id,
        project_title=project.title,
        owner_id=project.owner_id,
        applicant_id=application.applicant_id,
    ).new_event(topics, traceparent)


def message_sent(topics: TopicSettings, message: Message, traceparent: str | None) -> NewEvent:
    return MessageSent(
        message_id=message.id,
        conversation_id=conversation_id(message.sender_id, message.recipient_id),
        sender_id=message.sender_id,
        recipient_id=message.recipient_id,
        preview=message.body[:PREVIEW_CHARS],
    ).new_event(topics, traceparent)
