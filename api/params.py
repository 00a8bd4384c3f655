"""Path and query parameters shared by the resource routes."""

from __future__ import annotations

from typing import Annotated

from litestar.params import PathParameter, QueryParameter

from api.fields import MAX_ID

PathId = Annotated[int, PathParameter(ge=1, le=MAX_ID, description="a positive id")]
Limit = Annotated[int, QueryParameter(ge=1, le=100, description="page size (1-100)")]
Offset = Annotated[int, QueryParameter(ge=0, le=1_000_000, description="rows to skip")]
