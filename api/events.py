"""One builder per domain event the API emits, and `emit`, which writes it to the
outbox in the request's transaction (architecture invariant 1).

Keys (Kafka key, lock key and shard key are all `<aggregate_type>:<aggregate_id>`):
- `user.registered`, `user.login`: the user (`user:<id>`).
- `project.created`, `project.applied`: the project (`project:<id>`), so a project's
  creation is always seen before its applications.
- `message.sent`: the conversation, `message:<low id>-<high id>` of the two users.
  Per-conversation order is what a reader sees, and both directions share one key.
  Keying by sender would order one user's outgoing messages but could let B's reply
  overtake A's message; keying by message would order nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core.outbox import NewEvent, StoredEvent, enqueue
from core.settings import Settings, TopicSettings
from core.tables import Message, Project, ProjectApplication, User

USER = "user"
PROJECT = "project"
MESSAGE = "message"


async def emit(session: AsyncSession, settings: Settings, event: NewEvent) -> StoredEvent:
    return await enqueue(session, event, shards=settings.relay.shards)


def conversation_id(a: int, b: int) -> str:
    return f"{min(a, b)}-{max(a, b)}"


def user_registered(topics: TopicSettings, user: User, traceparent: str | None) -> NewEvent:
    return NewEvent(
        topic=topics.user,
        event_type="user.registered",
        aggregate_type=USER,
        aggregate_id=str(user.id),
        data={"user_id": user.id, "username": user.username, "email": user.email},
        user_id=user.id,
        traceparent=traceparent,
    )


def user_login(
    topics: TopicSettings, user: User, at: datetime, traceparent: str | None
) -> NewEvent:
    return NewEvent(
        topic=topics.user,
        event_type="user.login",
        aggregate_type=USER,
        aggregate_id=str(user.id),
        data={"user_id": user.id, "username": user.username, "login_at": at.isoformat()},
        user_id=user.id,
        traceparent=traceparent,
    )


def project_created(topics: TopicSettings, project: Project, traceparent: str | None) -> NewEvent:
    return NewEvent(
        topic=topics.project,
        event_type="project.created",
        aggregate_type=PROJECT,
        aggregate_id=str(project.id),
        data={"project_id": project.id, "owner_id": project.owner_id, "title": project.title},
        user_id=project.owner_id,
        traceparent=traceparent,
    )


def project_applied(
    topics: TopicSettings,
    project: Project,
    application: ProjectApplication,
    traceparent: str | None,
) -> NewEvent:
    return NewEvent(
        topic=topics.project,
        event_type="project.applied",
        aggregate_type=PROJECT,
        aggregate_id=str(project.id),
        data={
            "application_id": application.id,
            "project_id": project.id,
            "project_title": project.title,
            "owner_id": project.owner_id,
            "applicant_id": application.applicant_id,
        },
        user_id=application.applicant_id,
        traceparent=traceparent,
    )


def message_sent(topics: TopicSettings, message: Message, traceparent: str | None) -> NewEvent:
    conversation = conversation_id(message.sender_id, message.recipient_id)
    return NewEvent(
        topic=topics.message,
        event_type="message.sent",
        aggregate_type=MESSAGE,
        aggregate_id=conversation,
        data={
            "message_id": message.id,
            "conversation_id": conversation,
            "sender_id": message.sender_id,
            "recipient_id": message.recipient_id,
            "preview": message.body[:140],
        },
        user_id=message.sender_id,
        traceparent=traceparent,
    )
