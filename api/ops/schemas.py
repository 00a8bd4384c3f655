"""Bodies of the health routes (the operator endpoints answer plain JSON objects)."""

from __future__ import annotations

import msgspec


class StatusOut(msgspec.Struct):
    status: str
