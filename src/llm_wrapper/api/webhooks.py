"""`POST /webhooks/parallel-monitor`: Parallel's monitor notifications.

The raw body is verified (when PARALLEL_WEBHOOK_SECRET is set), stored, and
answered 200 at once; the event group's content is fetched in the background.
Bad or missing signature 401, malformed body or ids 400; nothing is stored for either.
A repeated delivery is answered 200 and stored once; one for a monitor not known
here is answered 200 and dropped.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..errors import GatewayError
from ..metrics import WEBHOOKS
from .deps import ServicesDep, read_body
from .responses import json_response

router = APIRouter()


@router.post("/webhooks/parallel-monitor")
async def parallel_monitor_webhook(request: Request, services: ServicesDep) -> Response:
    raw = await read_body(request, services.settings.max_body_bytes)
    try:
        outcome = await services.monitors.ingest(request.headers, raw)
    except GatewayError as error:
        WEBHOOKS.labels(f"refused_{error.status}").inc()
        raise
    WEBHOOKS.labels("ignored" if outcome.get("ignored") else "duplicate" if outcome.get("duplicate") else "accepted").inc()
    return json_response(outcome)
