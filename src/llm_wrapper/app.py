"""`create_app(settings)`: the FastAPI application, its routes, error mapping and lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from . import redaction
from .analytics import AnalyticsLog
from .api import admin, chat, dialects, docs, health, me, origin, pages, webhooks
from .api import monitors as monitors_api
from .api.hot import GatewayApp
from .auth import Authorizer
from .config import load_config
from .errors import GatewayError, InvalidRequest, NotFound, error_response, status_type
from .gateway import Gateway
from .monitors import worker as monitor_worker
from .monitors.service import MonitorService
from .monitors.speed import SpeedUpdates
from .pricing import PriceTable
from .providers import ProviderRegistry
from .routing import Router
from .services import Services
from .settings import Settings, load_settings
from .store import Store, StoreUnavailable, open_store
from .usage import UsageRecorder

log = logging.getLogger(__name__)

GC_YOUNGEST = 20_000  # objects made (less those freed) before the youngest generation is collected


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. The provider configuration is read here, so a bad file fails at once."""
    settings = settings or load_settings()
    config = load_config(settings.llm_wrapper_config)
    registry = ProviderRegistry.from_config(config.providers, settings.secret)
    router = Router(registry.providers.values(), config.routing)
    prices = PriceTable.load(config.providers)
    redaction.register(settings.secret_values(c.api_key_env for c in config.providers.values()))
    redaction.scrub_logs()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(settings)
        migrating = await _migrate_or_keep_trying(store)
        analytics = AnalyticsLog(settings.llm_wrapper_log_file)
        auth = Authorizer(store)
        usage = UsageRecorder(store, lambda: auth.clock(), every=settings.usage_flush_seconds)  # follows a test's clock
        monitors = MonitorService(settings, store)
        gateway = Gateway(
            registry=registry,
            router=router,
            auth=auth,
            analytics=analytics,
            answerers=[SpeedUpdates(monitors, settings.update_keywords)],
            max_body_bytes=settings.max_body_bytes,
            prices=prices,
            usage=usage,
        )
        app.state.services = Services(settings, registry, store, analytics, auth, gateway, monitors, usage=usage)
        if migrating is not None:
            app.state.services.extras["migrating"] = migrating
        await registry.start()
        usage.start()
        _settle_garbage_collector()
        try:
            async with monitor_worker.running(monitors, settings):
                yield
            if migrating is not None:
                migrating.cancel()
        finally:
            await registry.close()
            analytics.close()
            await usage.close()  # the requests in flight have finished: write their usage
            await store.close()

    app = GatewayApp(
        title="llm-wrapper",
        summary="An OpenAI-compatible LLM gateway",
        lifespan=lifespan,
        # The API's description only with API_DOCS (see api/docs.py for the pages' policy).
        openapi_url="/openapi.json" if settings.api_docs else None,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,  # made in api/origin.py, without trusting the Host header
        # FastAPI's built-in telemetry looks up OpenTelemetry providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.public_base_url = settings.public_base_url
    app.include_router(chat.router)
    app.include_router(dialects.router)
    app.hot_routes = {**chat.HOT, **dialects.HOT}
    app.include_router(health.router)
    if settings.metrics_port is None:  # else only the separate listener serves it (server.py)
        app.include_router(health.metrics_router)
    if settings.api_docs:
        docs.install(app)
    app.include_router(me.router)
    app.include_router(monitors_api.router)
    app.include_router(webhooks.router)
    app.include_router(admin.router)
    pages.install(app)  # the web pages and /static
    _install_error_handlers(app)
    return app


def _settle_garbage_collector() -> None:
    """Move what start-up made out of the collector's sight (`gc.freeze`) and let more objects be
    made between collections: a request makes a few hundred short-lived objects, and the youngest
    generation's default of 700 collected several times a request's worth of them. Cycles are still
    collected, only less often (docs/benchmarks.md has the figures)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNGEST, 20, 50)


async def _migrate_or_keep_trying(store: Store) -> asyncio.Task[None] | None:
    """Migrate now; if the database is down, start anyway (503s until it answers) and keep trying."""
    try:
        await store.migrate()
        return None
    except StoreUnavailable as exc:
        log.error("the database is not available at start-up (%s); answering 503 until it is", exc.message)

    async def keep_trying() -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                await store.migrate()
            except StoreUnavailable:
                delay = min(delay * 2, 30.0)
                continue
            log.info("the database is available again; schema up to date")
            return

    return asyncio.create_task(keep_trying(), name="migrate-when-available")


def _grant_headers(request: Request) -> dict[str, str]:
    grant = getattr(request.state, "grant", None)
    if grant is None:
        return {}
    return request.app.state.services.auth.headers_for(grant)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> Response:
        return error_response(exc, _grant_headers(request))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        message = f"Invalid request: {first.get('msg', 'bad input')}" + (f" ({param})" if param else "")
        return error_response(InvalidRequest(message, param=param), _grant_headers(request))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            redirect = origin.slash_redirect(request)
            if redirect is not None:
                return redirect
            error: GatewayError = NotFound(f"No route for {request.method} {request.url.path}.")
        else:
            error = GatewayError(str(exc.detail), status=exc.status_code, type=status_type(exc.status_code))
        return error_response(error, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(GatewayError("Internal error in the gateway."), _grant_headers(request))
