"""This server's public address for pages and redirects, never taken blindly from `Host`.

With PUBLIC_BASE_URL set, pages and redirects use it and nothing else. Without it
the request's scheme and `Host` are used when the host is a plausible
`host[:port]`, and otherwise the address the connection arrived on: a hostile
`Host` header never reaches a page or a `Location`.

The trailing-slash redirect is made here too (Starlette's own builds its
`Location` from `Host`), and only on the way to a 404, so it costs a request
that matched a route nothing.
"""

from __future__ import annotations

import re

from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match
from starlette.types import Scope

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]{{2,45}}\])(?::[0-9]{{1,5}})?")
MAX_HOST = 255


def plausible_host(host: str) -> bool:
    """A DNS name, IPv4 address or bracketed IPv6 address, with an optional port."""
    return len(host) <= MAX_HOST and HOST.fullmatch(host) is not None


def base_url(request: Request) -> str:
    """scheme://host[:port][/prefix] that clients reach this server at, with no trailing slash."""
    configured: str | None = request.app.state.public_base_url
    if configured:
        return configured
    scope = request.scope
    host = request.headers.get("host", "")
    if not plausible_host(host):
        server = scope.get("server") or ("localhost", None)
        name = f"[{server[0]}]" if ":" in server[0] else server[0]
        host = name if server[1] is None else f"{name}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '').rstrip('/')}"


def slash_redirect(request: Request) -> Response | None:
    """307 to the same path with its trailing slash added or removed, when no route took this
    path and one takes the other (a 404 from inside a route, such as a missing static file, stays)."""
    scope = request.scope
    path = get_route_path(scope)
    if scope["type"] != "http" or path == "/" or _routed(request, scope):
        return None
    other = path.rstrip("/") if path.endswith("/") else path + "/"
    if not _routed(request, {**scope, "path": scope.get("root_path", "") + other}):
        return None
    query = scope.get("query_string", b"").decode("latin-1")
    return RedirectResponse(base_url(request) + other + (f"?{query}" if query else ""), status_code=307)


def _routed(request: Request, scope: Scope) -> bool:
    return any(route.matches(scope)[0] is not Match.NONE for route in request.app.router.routes)
