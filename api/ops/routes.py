"""Operator endpoints: `/ops` (the live page) and `/ops/status|outbox|consumers|dlq` (JSON).

They answer to the operator token, not to user JWTs (`api/ops/guards.py`). The numbers
come from `core.status`, the same code as `connectin status`.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, Router, get, post
from litestar.datastructures import CacheControlHeader, State
from litestar.exceptions import NotFoundException, ServiceUnavailableException
from litestar.params import QueryParameter
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE

from api.auth import EXCLUDE_FROM_AUTH
from api.errors import error_response
from api.ops.collector import collector
from api.ops.guards import AUTHENTICATE, require_ops_token, token_check
from api.ops.page import ops_page
from api.params import PathId
from core.dead_letters import list_dead_letters, pending_by_topic, replay
from core.status import StatusUnavailable


@get("/", include_in_schema=False)
async def page(request: Request[Any, Any, Any]) -> Response[str]:
    """The live page. Without a valid token it is answered 401 with the same page,
    which holds no data and asks for the token; with OPS_TOKEN unset, 503."""
    verdict = token_check(request)
    rendered = ops_page()
    headers = {"Content-Security-Policy": rendered.content_security_policy}
    if verdict == 401:
        headers |= AUTHENTICATE
    return Response(rendered.html, media_type="text/html", status_code=verdict, headers=headers)


@get("/status")
async def status(state: State) -> dict[str, Any]:
    """Everything at once: outbox per shard, consumer lag, dead letters, verdicts.
    A store that cannot be read is listed in `errors` (verdict `unknown`)."""
    snapshot = await collector(state).snapshot()
    return snapshot.to_dict()


@get("/outbox")
async def outbox(state: State) -> dict[str, Any]:
    """Per shard: leader (pid, client address, application name), pending events and
    the age of the oldest unpublished one."""
    status = collector(state)
    part = await status.outbox()
    return _with_findings(part.to_dict(), status.findings(outbox=part))


@get("/consumers")
async def consumers(state: State) -> dict[str, Any]:
    """Per consumer group and partition: committed offset, end offset, lag."""
    status = collector(state)
    part = await status.consumers()
    return _with_findings(part.to_dict(), status.findings(consumers=part))


@get("/dlq")
async def dead_letters(
    state: State,
    topic: Annotated[str | None, QueryParameter(description="only this original topic")] = None,
    pending: Annotated[bool, QueryParameter(description="leave out replayed ones")] = True,
    limit: Annotated[int, QueryParameter(ge=1, le=500, description="at most this many")] = 50,
) -> dict[str, Any]:
    """Dead letters newest first (`pending=false` includes replayed ones) and the
    unreplayed count per original topic."""
    status = collector(state)
    rows = await status.guard(
        "postgres",
        list_dead_letters(status.engine, topic=topic, pending_only=pending, limit=limit),
    )
    by_topic = dict(
        sorted((await status.guard("postgres", pending_by_topic(status.engine))).items())
    )
    return {
        "unreplayed": sum(by_topic.values()),
        "by_topic": by_topic,
        "dead_letters": [d.to_dict() for d in rows],
    }


@post("/dlq/{dead_letter_id:int}/replay", status_code=200)
async def replay_dead_letter(state: State, dead_letter_id: PathId) -> dict[str, Any]:
    """Produce the dead letter to its original topic again and mark it replayed.
    Consumers that already processed the event skip it, so a second replay is harmless."""
    status = collector(state)
    [result] = await replay(status.engine, status.settings.kafka, [dead_letter_id])
    if result.topic is None:
        raise NotFoundException(f"no dead letter {dead_letter_id}")
    if not result.ok:
        raise ServiceUnavailableException(f"Kafka did not take the record: {result.error}")
    return result.to_dict()


def _unreadable(_: Request[Any, Any, Any], exc: StatusUnavailable) -> Response[dict[str, Any]]:
    """A part the route reads could not be read: 503 with the reason."""
    return error_response(HTTP_503_SERVICE_UNAVAILABLE, str(exc))


def _with_findings(body: dict[str, Any], findings: list[Any]) -> dict[str, Any]:
    body["breaches"] = [f.to_dict() for f in findings if f.severity == "breach"]
    body["warnings"] = [f.to_dict() for f in findings if f.severity == "warning"]
    return body


# Everything but the page, which must answer (401 + token form) without a token.
guarded = Router(
    path="/",
    route_handlers=[status, outbox, consumers, dead_letters, replay_dead_letter],
    guards=[require_ops_token],
    exception_handlers={StatusUnavailable: _unreadable},
)

ROUTER = Router(
    path="/ops",
    route_handlers=[page, guarded],
    # The operator token replaces the user JWT here; user tokens give no access.
    opt={EXCLUDE_FROM_AUTH: True},
    tags=["ops"],
    # Live numbers and operator-only data: never cached by a browser or a proxy.
    cache_control=CacheControlHeader(no_store=True),
)
