"""Which state-changing requests come from this site: the session cookie
rides along with any request a browser sends here, so one that another site
made must be refused (`sessions.middleware.SessionMiddleware` answers it 403).

From another site: an `Origin` whose scheme, host and port differ from this
service's and from each of `ALLOWED_ORIGINS`, more than one `Origin`, or
else `Sec-Fetch-Site: cross-site` or `same-site`. Requests with neither
header come from non-browser clients, which send no cookies unasked, and
pass. This service's scheme is the request's, taken from
`X-Forwarded-Proto` only from the proxies in `FORWARDED_ALLOW_IPS`
(`__main__.py`)."""

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import Scope

# `Sec-Fetch-Site` values a browser sends for requests this site made itself.
OWN_FETCH_SITES = frozenset({"same-origin", "none"})
DEFAULT_PORTS = {"http": 80, "https": 443}


class SameSite:
    """Whether a request comes from this site or from one of `allowed_origins`."""

    def __init__(self, allowed_origins: list[str]) -> None:
        self.allowed_origins = frozenset(filter(None, map(parse_origin, allowed_origins)))

    def __call__(self, scope: Scope, headers: Headers) -> bool:
        origins = headers.getlist("origin")
        if len(origins) > 1:
            return False
        if origins:
            # Browsers send `Origin` with every state-changing request.
            origin = parse_origin(origins[0])
            own = parse_origin(f"{scope['scheme']}://{headers.get('host', '')}")
            return origin is not None and (origin == own or origin in self.allowed_origins)
        return headers.get("sec-fetch-site", "none") in OWN_FETCH_SITES


def parse_origin(value: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, the port made explicit; None for
    anything else (`null`, a path, a malformed port)."""
    try:
        parts = urlsplit(value.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]
