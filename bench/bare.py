"""The reference: a bare FastAPI + aiohttp proxy with no features, measured beside the gateway.

It does only what any proxy must: read the body, find the model (to pick the
upstream), forward on one pooled aiohttp session, and pass the answer back
(streams as they arrive). No auth, no counting, no logging, no metrics, no
checks. The gateway's CPU per request is reported as a ratio to this one's, in
the same run, so a slower or faster machine moves both.

    python -m bench.bare --port PORT --upstream http://127.0.0.1:NGINX_PORT
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import orjson
import uvicorn
from fastapi import FastAPI, Request
from starlette.responses import Response, StreamingResponse

from .upstream import SSE_MODEL


def create_app(upstream: str) -> FastAPI:
    session: aiohttp.ClientSession | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal session
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await session.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.body()
        model = orjson.loads(body).get("model")
        path = "sse" if model == SSE_MODEL else "json"
        assert session is not None
        answer = await session.post(
            f"{upstream}/{path}/v1/chat/completions",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": "Bearer sk-bench"},
        )
        if answer.content_type != "text/event-stream":
            data = await answer.read()
            answer.release()
            return Response(data, status_code=answer.status, media_type="application/json")

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for piece in answer.content.iter_any():
                    yield piece
            finally:
                answer.release()

        return StreamingResponse(relay(), status_code=answer.status, media_type="text/event-stream")

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        body = await request.body()
        assert session is not None
        async with session.post(
            f"{upstream}/json/v1/embeddings",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": "Bearer sk-bench"},
        ) as answer:
            data = await answer.read()
        return Response(data, status_code=answer.status, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument(
        "--server", choices=("uvicorn", "granian"), default="uvicorn",
        help="the ASGI server (the reference is uvicorn, as `llm-wrapper serve` uses; granian to compare)",
    )
    args = parser.parse_args()
    if args.server == "granian":
        try:
            from granian.constants import Interfaces, Loops
            from granian.server import Server
        except ImportError:
            raise SystemExit("granian is not installed (only this comparison uses it): .venv/bin/pip install granian") from None

        os.environ["BENCH_BARE_UPSTREAM"] = args.upstream
        Server(
            "bench.bare:from_environment", address="127.0.0.1", port=args.port, interface=Interfaces.ASGI,
            factory=True, loop=Loops.uvloop, log_access=False,
        ).serve()
        return
    # The same server settings as `llm-wrapper serve`: uvloop and httptools when installed.
    uvicorn.run(
        create_app(args.upstream), host="127.0.0.1", port=args.port, log_level="warning", access_log=False
    )


def from_environment() -> FastAPI:
    """The app for a server that imports it by name (granian), upstream from the environment."""
    return create_app(os.environ["BENCH_BARE_UPSTREAM"])


if __name__ == "__main__":
    main()
