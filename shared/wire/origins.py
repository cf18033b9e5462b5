"""The origin of a URL (scheme://host[:port]): which host a Graph token may go to. Pure, no imports of the bridge.

Used by the Graph client (it sends tokens only to GRAPH_BASE_URL's origin), the settings (the token scope) and
the request validation (an operationUrl must have Graph's origin).
"""

from __future__ import annotations

from urllib.parse import urlsplit


def origin_of(url: str) -> str:
    """scheme://host[:port] in lower case, with the default port dropped."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return f"{scheme}://{host}:invalid-port"  # never equal to a real origin
    default = {"https": 443, "http": 80}.get(scheme)
    return f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{port}"
