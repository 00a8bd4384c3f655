"""Structured JSON logs (structlog) for every process, secrets redacted.

Our own loggers and the libraries' (stripe, httpx, confluent-kafka's Python side,
uvicorn) end in the same JSON lines on stderr through one redaction step, at every
level: at DEBUG the stripe package logs whole request and response bodies, with
PaymentIntent client secrets, customer emails and names.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"

# Values by the name they are logged under (structlog keys, any case).
SENSITIVE_KEYS = frozenset(
    {
        "authorization",
        "cookie",
        "set-cookie",
        "password",
        "client_secret",
        "secret",
        "token",
        "access_token",
        "api_key",
        "secret_key",
        "jwt_secret",
        "ops_token",
        "webhook_secret",
        "email",
    }
)

# A field inside a logged string: JSON (`"email": "a@b.c"`, escaped `\"email\": \"...\"`
# once the stripe package logfmt-quotes a body), form (`email=a%40b.c&`) or logfmt.
_FIELD = re.compile(
    r"""(?ix)
    (?P<key>\b(?:client_secret|email|name|phone|password|authorization|api_key)\b
        \\?["']?\s*[:=]\s*\\?["']?)
    (?P<value>(?:bearer\s+|basic\s+)?[^"'\\&,}\s][^"'\\&,}]*)
    """
)
# Secrets recognisable by their shape wherever they appear.
_SHAPES = (
    re.compile(r"\b(?:pi|seti)_[A-Za-z0-9]+_secret_[A-Za-z0-9]+"),  # client_secret
    re.compile(r"\b[sr]k_[A-Za-z0-9_]+"),  # Stripe secret and restricted keys
    re.compile(r"\bwhsec_[A-Za-z0-9_+/=-]+"),  # webhook signing secrets
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"),  # emails
)


def redact_text(text: str) -> str:
    text = _FIELD.sub(lambda m: m.group("key") + REDACTED, text)
    for shape in _SHAPES:
        text = shape.sub(REDACTED, text)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if str(k).lower() in SENSITIVE_KEYS else _redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the last one before rendering, so it also sees formatted
    tracebacks and the text of other libraries' records."""
    redacted: EventDict = _redact(event_dict)
    return redacted


def configure_logging(level: str = "INFO", *, process: str) -> None:
    before_render: list[Processor] = [
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *before_render,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(process=process)
    # Records of the standard library's loggers (every third-party library) become the
    # same JSON lines, with the logger's name, through the same redaction.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *before_render,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
