"""The operators' page (`GET /ops`): one HTML document with its CSS and JS inlined.

Inlining keeps the page a single response (no unauthenticated asset routes) and lets
the Content-Security-Policy allow exactly these two blocks by hash: nothing else can
run or load, which also enforces "no external CDN". The page holds no data; it asks
for the operator token and fetches /ops/status and /ops/dlq with it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent


@dataclass(frozen=True)
class OpsPage:
    html: str
    content_security_policy: str


def _sha256(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


@cache
def ops_page() -> OpsPage:
    css = (HERE / "ops.css").read_text()
    js = (HERE / "ops.js").read_text()
    html = (HERE / "index.html").read_text()
    html = html.replace("{{ops.css}}", css).replace("{{ops.js}}", js)
    policy = "; ".join(
        [
            "default-src 'none'",
            f"script-src {_sha256(js)}",
            f"style-src {_sha256(css)}",
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return OpsPage(html=html, content_security_policy=policy)
