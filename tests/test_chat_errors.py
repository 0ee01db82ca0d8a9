"""Faults, in process: upstream errors, timeouts, unreachable and garbage-speaking providers,
broken streams, malformed and oversized requests. After each, the gateway still serves.

The app runs in the test's event loop behind an ASGI client, the fake providers beside it on
the same loop (tests/fixtures/inprocess.py); every adapter in the registry answers each fault
in its own recorded error shape. A client hanging up mid-stream needs a real server process
and is in tests/test_chat_e2e.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from llm_wrapper.providers import ADAPTERS
from tests.fakes.providers import FakeProviders
from tests.fixtures.inprocess import InProcessGateway
from tests.fixtures.providers import ADAPTER_NAMES, MAX_BODY_BYTES, MODELS

# Adapters that parse and rewrite each stream chunk (the others pass the bytes on untouched).
REWRITING = [name for name in ADAPTER_NAMES if ADAPTERS[name].stream_rewriter is not None]

ERROR_KEYS = {"message", "type", "param", "code"}
STATUS_ERRORS = {
    400: openai.BadRequestError,
    429: openai.RateLimitError,
    500: openai.InternalServerError,
    502: openai.InternalServerError,
    503: openai.InternalServerError,
    504: openai.InternalServerError,
}


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def marked(command: str) -> str:
    return f"{command} {uuid.uuid4().hex[:10]}"


async def still_serves(sdk: openai.AsyncOpenAI, model: str = "gpt-test") -> None:
    text = marked("again")
    answer = await sdk.chat.completions.create(model=model, messages=ask(text))
    assert (answer.choices[0].message.content or "").endswith(text)
    stream = await sdk.chat.completions.create(model=model, messages=ask(text), stream=True)
    chunks = [chunk async for chunk in stream]
    assert "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices).endswith(text)


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS
    return body["error"]


async def post(inproc: InProcessGateway, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {inproc.token}", **kwargs.pop("headers", {})}
    return await inproc.http.post("/v1/chat/completions", headers=headers, **kwargs)


# the provider's own errors ----------------------------------------------------


@pytest.mark.parametrize("status", [500, 429, 400])
@pytest.mark.parametrize("flavor", ADAPTER_NAMES)
@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_error_passed_on(sdk: openai.AsyncOpenAI, flavor: str, status: int, stream: bool) -> None:
    with pytest.raises(STATUS_ERRORS[status]) as caught:
        await sdk.chat.completions.create(
            model=MODELS[flavor], messages=ask(marked(f"fail:{status}")), stream=stream
        )
    assert caught.value.status_code == status
    error = error_of(caught.value)
    assert f"fake {flavor} says {status}" in error["message"]
    if status == 429:  # the provider's advice on when to retry is passed on
        assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.response.headers["x-ratelimit-limit-requests"]
    await still_serves(sdk, MODELS[flavor])


# gateway-made upstream errors -------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_timeout_is_504(sdk: openai.AsyncOpenAI, stream: bool) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        await sdk.chat.completions.create(model="gpt-slow", messages=ask(marked("slow")), stream=stream)
    assert caught.value.status_code == 504
    assert error_of(caught.value)["code"] == "upstream_timeout"
    await still_serves(sdk, "gpt-slow")


async def test_connection_refused_is_502(sdk: openai.AsyncOpenAI) -> None:
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as caught:
            await sdk.chat.completions.create(model="gpt-down", messages=ask("hello"), stream=stream)
        assert caught.value.status_code == 502
        assert "unreachable" in error_of(caught.value)["message"]
    await still_serves(sdk)


@pytest.mark.parametrize("flavor", ADAPTER_NAMES)
async def test_non_json_answer_is_502(sdk: openai.AsyncOpenAI, flavor: str) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        await sdk.chat.completions.create(model=MODELS[flavor], messages=ask(marked("badjson")))
    assert caught.value.status_code == 502
    assert error_of(caught.value)["code"] == "bad_upstream_response"
    await still_serves(sdk, MODELS[flavor])


async def test_answer_cut_short_is_502(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        await sdk.chat.completions.create(model="gpt-test", messages=ask(marked("cut")))
    assert caught.value.status_code == 502
    await still_serves(sdk)


# streams that fail after they started -------------------------------------------


async def consume(sdk: openai.AsyncOpenAI, model: str, command: str) -> tuple[str, BaseException | None]:
    """Stream `command` from `model`: the text that arrived, and the error the SDK raised while reading."""
    stream = await sdk.chat.completions.create(model=model, messages=ask(marked(command)), stream=True)
    text = ""
    try:
        async for chunk in stream:
            text += "".join(c.delta.content or "" for c in chunk.choices)
    except openai.APIError as exc:
        return text, exc
    return text, None


@pytest.mark.parametrize("flavor", ADAPTER_NAMES)
async def test_stream_cut_midway_raises_in_the_sdk(sdk: openai.AsyncOpenAI, flavor: str) -> None:
    text, error = await consume(sdk, MODELS[flavor], "cut")
    assert isinstance(error, openai.APIError), "a cut stream must not look complete"
    assert not isinstance(error, openai.APIConnectionError)  # our error event, not a dropped connection
    assert "broke off" in error.message
    assert text.startswith("Hello")
    await still_serves(sdk, MODELS[flavor])


async def test_stream_stalled_past_the_timeout_raises_in_the_sdk(sdk: openai.AsyncOpenAI) -> None:
    _, error = await consume(sdk, "gpt-slow", "stall")
    assert isinstance(error, openai.APIError) and not isinstance(error, openai.APIConnectionError)
    assert "stopped sending" in error.message
    await still_serves(sdk, "gpt-slow")


@pytest.mark.parametrize("flavor", REWRITING)
async def test_stream_with_a_non_json_event_raises_in_the_sdk(sdk: openai.AsyncOpenAI, flavor: str) -> None:
    _, error = await consume(sdk, MODELS[flavor], "badjson")
    assert isinstance(error, openai.APIError) and not isinstance(error, openai.APIConnectionError)
    assert "garbage" in error.message
    await still_serves(sdk, MODELS[flavor])


@pytest.mark.parametrize("flavor", ADAPTER_NAMES)
async def test_upstream_error_event_reaches_the_sdk(sdk: openai.AsyncOpenAI, flavor: str) -> None:
    _, error = await consume(sdk, MODELS[flavor], "error")
    assert isinstance(error, openai.APIError) and "fake upstream broke" in error.message
    await still_serves(sdk, MODELS[flavor])


# the client's own mistakes --------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": 7, "messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "gpt-test"}', "messages"),
        (b'{"model": "gpt-test", "messages": []}', "messages"),
        (b'{"model": "gpt-test", "messages": "hi"}', "messages"),
    ],
)
async def test_malformed_body_is_400(
    inproc: InProcessGateway, fakes: FakeProviders, content: bytes, param: str | None
) -> None:
    before = len(fakes.requests)
    response = await post(inproc, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == ERROR_KEYS
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert response.headers["x-ratelimit-remaining-requests"]
    assert len(fakes.requests) == before


async def test_malformed_body_through_the_sdk(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.chat.completions.create(model="gpt-test", messages=[])
    assert error_of(caught.value)["param"] == "messages"
    await still_serves(sdk)


async def test_body_over_the_limit_is_413(inproc: InProcessGateway, sdk: openai.AsyncOpenAI) -> None:
    big = {"model": "gpt-test", "messages": ask("x" * (MAX_BODY_BYTES + 10))}
    response = await post(inproc, json=big)
    assert response.status_code == 413
    assert set(response.json()["error"]) == ERROR_KEYS

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the limit is enforced while reading
        yield b'{"model": "gpt-test", "messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY_BYTES // 1000 + 2):
            yield b"y" * 1000
        yield b'"}]}'

    response = await post(inproc, content=chunked(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    with pytest.raises(openai.APIStatusError) as caught:
        await sdk.chat.completions.create(model="gpt-test", messages=ask("z" * MAX_BODY_BYTES))
    assert caught.value.status_code == 413
    await still_serves(sdk)


async def test_unknown_route_is_openai_shaped_404(inproc: InProcessGateway) -> None:
    response = await inproc.http.get("/v1/nothing-here", headers={"Authorization": f"Bearer {inproc.token}"})
    assert response.status_code == 404
    assert set(response.json()["error"]) == ERROR_KEYS
