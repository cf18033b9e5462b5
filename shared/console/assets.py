"""The operations console's static files (shared/console/): which names are served, with which type and headers.

The page holds no data and no key: it is served anonymously (App Service Authentication, when on, still stands in
front of it), and its script calls the same API routes with the credential the user holds (docs/console.md).
Only the files listed in ASSETS are served, read once per worker; a name not listed is a 404, never a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

ASSET_DIR = Path(__file__).resolve().parent / "static"
INDEX = "index.html"
ASSETS = {
    INDEX: "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
# Everything from the app itself: no inline script or style, no other origin, not framed, no referrer.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


@cache
def asset(name: str) -> Asset | None:
    """The named console file, or None when the name is not one of ASSETS."""
    content_type = ASSETS.get(name)
    if content_type is None:
        return None
    return Asset((ASSET_DIR / name).read_bytes(), content_type)
