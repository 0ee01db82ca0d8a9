"""The web pages: landing, monitor form, account, the operator console, payment outcomes.

`install(app)` loads the templates once, mounts the stylesheet and scripts at
`/static` and adds the routes. The pages hold no secrets: the monitor form and
the account page call the JSON API from the browser with `fetch()`, sending the
token only in the Authorization header.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import Scope

from .. import __version__
from ..services import Services
from .deps import ServicesDep
from .origin import base_url

WEB = Path(__file__).resolve().parent.parent / "web"

# Everything a page loads comes from this server; nothing inline, nothing from elsewhere.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(include_in_schema=False)


def install(app: FastAPI) -> None:
    """Load the templates (once), mount `/static` and add the page routes to `app`."""
    env = Environment(
        loader=FileSystemLoader(WEB / "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["version"] = __version__
    app.state.templates = Jinja2Templates(env=env)
    app.mount("/static", NoSniffStaticFiles(directory=WEB / "static"), name="static")
    app.include_router(router)


class NoSniffStaticFiles(StaticFiles):
    """Static files a browser must take as the type they are served with."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def render(request: Request, name: str, page: str, **context: Any) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    root = request.scope.get("root_path", "").rstrip("/")
    return templates.TemplateResponse(
        request, name, {"page": page, "root": root, **context}, headers=PAGE_HEADERS
    )


@router.get("/")
async def index(request: Request, services: ServicesDep) -> Response:
    providers = models_by_provider(services)
    listed = services.gateway.models()
    example = next((m.id for m in listed if m.owned_by != "llm-wrapper"), listed[0].id if listed else "")
    api_base = base_url(request) + "/v1"
    return render(
        request, "index.html", "home",
        providers=providers, model_count=len(listed), example_model=example, api_base=api_base,
    )


@router.get("/create-monitor")
async def create_monitor(request: Request, services: ServicesDep) -> Response:
    return render(request, "create-monitor.html", "monitor", ttl_hours=_hours(services))


@router.get("/account")
async def account(request: Request) -> Response:
    return render(request, "account.html", "account")


@router.get("/admin")
async def admin(request: Request, services: ServicesDep) -> Response:
    """The operator console: it only says whether it is on; everything else it asks the admin API."""
    key = services.settings.llm_wrapper_admin_key
    return render(request, "admin.html", "admin", enabled=bool(key and key.get_secret_value()))


@router.get("/payment/success")
async def payment_success(request: Request) -> Response:
    return render(request, "payment-success.html", "payment")


@router.get("/payment/error")
async def payment_error(request: Request) -> Response:
    return render(request, "payment-error.html", "payment")


@router.get("/payment/cancel")
async def payment_cancel(request: Request) -> Response:
    return render(request, "payment-cancel.html", "payment")


def models_by_provider(services: Services) -> OrderedDict[str, list[str]]:
    """Provider (or answerer) name → the models it serves now, as `/v1/models` lists them."""
    groups: OrderedDict[str, list[str]] = OrderedDict()
    for model in services.gateway.models():
        groups.setdefault(model.title, []).append(model.id)
    return groups


def _hours(services: Services) -> str:
    hours = services.settings.monitor_ttl_hours
    return f"{hours:g}"
