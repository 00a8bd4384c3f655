"""JSON request bodies: a nesting-depth limit and strict types.

Litestar decodes a body into plain Python values and then converts those to the
handler's `data` type with msgspec in lax mode (it has to be lax for query and path
parameters, which arrive as strings). For bodies that lets `"100"`, `100.0` and `1e3`
pass where the schema says integer, and msgspec's recursive decoder raises
RecursionError (a 500) on bodies nested about a thousand levels deep. This request
class decodes the body straight into the handler's declared type in strict mode,
after a depth check, and hands Litestar the already validated values.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

MAX_JSON_DEPTH = 64

# A JSON string (skipped: brackets inside it do not nest) or one bracket.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\[\s\S][^"\\]*)*"|[\[\]{}]')
_AT_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def nesting_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when arrays/objects nest deeper than `limit`. Bodies with fewer brackets
    than the limit (every legitimate one here) are answered by two C-speed counts."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for match in _TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def _body_error(
    request: Request[Any, Any, Any], exc: msgspec.ValidationError
) -> ValidationException:
    found = _AT_PATH.match(str(exc))
    message = found.group("message") if found else str(exc)
    path = (found.group("path") or "") if found else ""
    error: dict[str, str] = {"message": message, "source": "body"}
    if path:
        error["key"] = path.lstrip(".")
    return ValidationException(
        detail=f"Validation failed for {request.method} {request.url.path}", extra=[error]
    )


class StrictJSONRequest(Request[Any, Any, Any]):
    """The app's request class (`Litestar(request_class=...)`)."""

    def _data_type(self) -> Any:
        field = self.route_handler.parsed_fn_signature.parameters.get("data")
        return None if field is None else field.annotation

    async def json(self) -> Any:
        body = await self.body()
        if nesting_exceeds(body):
            raise ValidationException(
                detail=f"JSON body nested deeper than {MAX_JSON_DEPTH} levels",
                extra=[{"message": f"at most {MAX_JSON_DEPTH} levels", "source": "body"}],
            )
        target = self._data_type()
        if target is None:
            return await super().json()
        try:
            value = msgspec.json.decode(body or b"null", type=target, strict=True)
        except msgspec.ValidationError as exc:
            raise _body_error(self, exc) from None
        except msgspec.DecodeError as exc:
            raise ValidationException(
                detail=f"body is not valid JSON: {exc}",
                extra=[{"message": "malformed JSON", "source": "body"}],
            ) from None
        return msgspec.to_builtins(value)


def anchored(pattern: str) -> str:
    """A pattern the whole string must match. msgspec searches patterns with Python's
    `re`, whose `$` also matches before a final newline (`alice\\n` would pass
    `^[a-z]+$`); `(?![\\s\\S])` is the end of the string both there and in the
    ECMA-262 dialect OpenAPI clients read the same pattern in."""
    return rf"^(?:{pattern})(?![\s\S])"
