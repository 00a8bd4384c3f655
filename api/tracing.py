"""W3C Trace Context: carry the caller's `traceparent` into the event headers."""

from __future__ import annotations

import re

# version-traceid-parentid-flags, lowercase hex (W3C Trace Context, section 3.2).
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


def valid_traceparent(value: str | None) -> str | None:
    """The header when well formed, else None: a bad traceparent is dropped, as the
    spec asks, rather than failing the request or poisoning downstream traces."""
    if not value or len(value) > 512:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, _, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return value.strip()
