"""`/docs` and `/redoc`, only with API_DOCS=true: FastAPI's Swagger UI and ReDoc pages under a CSP.

Both load their scripts and styles from cdn.jsdelivr.net, as FastAPI's own pages do (nothing
is vendored here). The policy allows that CDN, Swagger UI's one inline script by its hash,
inline styles (both libraries set them from script), and nothing else: no other origin, no
framing, no forms.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import Response

CDN = "https://cdn.jsdelivr.net"
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)

router = APIRouter(include_in_schema=False)


def install(app: FastAPI) -> None:
    app.include_router(router)


def policy(*script_hashes: str) -> str:
    scripts = " ".join([CDN, *(f"'sha256-{h}'" for h in script_hashes)])
    return (
        f"default-src 'none'; script-src {scripts}; style-src {CDN} 'unsafe-inline'; "
        f"img-src 'self' data: {CDN}; font-src {CDN} data:; connect-src 'self'; worker-src blob:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _with_policy(page: Response) -> Response:
    hashes = [base64.b64encode(hashlib.sha256(s).digest()).decode() for s in INLINE_SCRIPT.findall(page.body)]
    page.headers["Content-Security-Policy"] = policy(*hashes)
    page.headers["X-Content-Type-Options"] = "nosniff"
    page.headers["Referrer-Policy"] = "no-referrer"
    return page


def _spec(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/") + "/openapi.json"


@router.get("/docs")
async def swagger(request: Request) -> Response:
    root = request.scope.get("root_path", "").rstrip("/")
    return _with_policy(get_swagger_ui_html(
        openapi_url=_spec(request), title="llm-wrapper · API", swagger_favicon_url=f"{root}/static/favicon.svg",
    ))


@router.get("/redoc")
async def redoc(request: Request) -> Response:
    root = request.scope.get("root_path", "").rstrip("/")
    return _with_policy(get_redoc_html(
        openapi_url=_spec(request), title="llm-wrapper · API", redoc_favicon_url=f"{root}/static/favicon.svg",
        with_google_fonts=False,
    ))
