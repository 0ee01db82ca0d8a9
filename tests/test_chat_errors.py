"""Faults end to end: upstream errors, timeouts, unreachable and garbage-speaking providers,
broken streams, malformed and oversized requests. After each, the gateway still serves."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fixtures.providers import MAX_BODY_BYTES, MODELS

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


def still_serves(client: openai.OpenAI, model: str = "gpt-test") -> None:
    text = marked("again")
    answer = client.chat.completions.create(model=model, messages=ask(text))
    assert answer.choices[0].message.content.endswith(text)
    chunks = list(client.chat.completions.create(model=model, messages=ask(text), stream=True))
    assert "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices).endswith(text)


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS
    return body["error"]


def post(gateway, token: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return httpx.post(f"{gateway.url}/v1/chat/completions", headers=headers, timeout=20, **kwargs)


# the provider's own errors ----------------------------------------------------


@pytest.mark.parametrize("status", [500, 429, 400])
@pytest.mark.parametrize("flavor", ["openai", "perplexity", "together", "parallel"])
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_error_passed_on(client: openai.OpenAI, flavor: str, status: int, stream: bool) -> None:
    with pytest.raises(STATUS_ERRORS[status]) as caught:
        client.chat.completions.create(model=MODELS[flavor], messages=ask(marked(f"fail:{status}")), stream=stream)
    assert caught.value.status_code == status
    error = error_of(caught.value)
    assert f"fake {flavor} says {status}" in error["message"]
    if status == 429:  # the provider's advice on when to retry is passed on
        assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.response.headers["x-ratelimit-limit-requests"]
    still_serves(client, MODELS[flavor])


# gateway-made upstream errors -------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_timeout_is_504(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-slow", messages=ask(marked("slow")), stream=stream)
    assert caught.value.status_code == 504
    assert error_of(caught.value)["code"] == "upstream_timeout"
    still_serves(client, "gpt-slow")


def test_connection_refused_is_502(client: openai.OpenAI) -> None:
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="gpt-down", messages=ask("hello"), stream=stream)
        assert caught.value.status_code == 502
        assert "unreachable" in error_of(caught.value)["message"]
    still_serves(client)


@pytest.mark.parametrize("flavor", ["openai", "parallel", "sambanova"])
def test_non_json_answer_is_502(client: openai.OpenAI, flavor: str) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=MODELS[flavor], messages=ask(marked("badjson")))
    assert caught.value.status_code == 502
    assert error_of(caught.value)["code"] == "bad_upstream_response"
    still_serves(client, MODELS[flavor])


def test_answer_cut_short_is_502(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-test", messages=ask(marked("cut")))
    assert caught.value.status_code == 502
    still_serves(client)


# streams that fail after they started -------------------------------------------


def consume(stream: Iterator[Any]) -> tuple[str, BaseException | None]:
    text = ""
    try:
        for chunk in stream:
            text += "".join(c.delta.content or "" for c in chunk.choices)
    except openai.APIError as exc:
        return text, exc
    return text, None


@pytest.mark.parametrize("flavor", ["openai", "perplexity", "together", "parallel"])
def test_stream_cut_midway_raises_in_the_sdk(client: openai.OpenAI, flavor: str) -> None:
    text, error = consume(client.chat.completions.create(model=MODELS[flavor], messages=ask(marked("cut")), stream=True))
    assert error is not None, "a cut stream must not look complete"
    assert not isinstance(error, openai.APIConnectionError)  # our error event, not a dropped connection
    assert "broke off" in error.message
    assert text.startswith("Hello")
    still_serves(client, MODELS[flavor])


def test_stream_stalled_past_the_timeout_raises_in_the_sdk(client: openai.OpenAI) -> None:
    _, error = consume(client.chat.completions.create(model="gpt-slow", messages=ask(marked("stall")), stream=True))
    assert isinstance(error, openai.APIError) and not isinstance(error, openai.APIConnectionError)
    assert "stopped sending" in error.message
    still_serves(client, "gpt-slow")


@pytest.mark.parametrize("flavor", ["perplexity", "sambanova", "together", "parallel"])
def test_stream_with_a_non_json_event_raises_in_the_sdk(client: openai.OpenAI, flavor: str) -> None:
    _, error = consume(client.chat.completions.create(model=MODELS[flavor], messages=ask(marked("badjson")), stream=True))
    assert isinstance(error, openai.APIError) and not isinstance(error, openai.APIConnectionError)
    assert "garbage" in error.message
    still_serves(client, MODELS[flavor])


@pytest.mark.parametrize("flavor", ["openai", "together"])
def test_upstream_error_event_reaches_the_sdk(client: openai.OpenAI, flavor: str) -> None:
    _, error = consume(client.chat.completions.create(model=MODELS[flavor], messages=ask(marked("error")), stream=True))
    assert isinstance(error, openai.APIError) and "fake upstream broke" in error.message
    still_serves(client, MODELS[flavor])


def test_client_going_away_closes_the_upstream(gateway, token: str, fake_providers, client: openai.OpenAI) -> None:
    text = marked("long")
    body = {"model": "gpt-test", "messages": ask(text), "stream": True}
    url, headers = f"{gateway.url}/v1/chat/completions", {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=20) as http, http.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200
        first = next(response.iter_bytes())
        assert first.startswith(b"data: ")
    deadline = time.monotonic() + 8  # the fake streams for 15 s unless the gateway hangs up
    while time.monotonic() < deadline and text not in fake_providers.stream_ends:
        time.sleep(0.05)
    assert fake_providers.stream_ends.get(text) == "gone"
    still_serves(client)


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
def test_malformed_body_is_400(gateway, token: str, content: bytes, param: str | None, fake_providers) -> None:
    before = len(fake_providers.requests)
    response = post(gateway, token, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == ERROR_KEYS
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert response.headers["x-ratelimit-remaining-requests"]
    assert len(fake_providers.requests) == before


def test_malformed_body_through_the_sdk(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-test", messages=[])
    assert error_of(caught.value)["param"] == "messages"
    still_serves(client)


def test_body_over_the_limit_is_413(gateway, token: str, client: openai.OpenAI) -> None:
    big = {"model": "gpt-test", "messages": ask("x" * (MAX_BODY_BYTES + 10))}
    response = post(gateway, token, json=big)
    assert response.status_code == 413
    assert set(response.json()["error"]) == ERROR_KEYS

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        yield b'{"model": "gpt-test", "messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY_BYTES // 1000 + 2):
            yield b"y" * 1000
        yield b'"}]}'

    response = post(gateway, token, content=chunked(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-test", messages=ask("z" * MAX_BODY_BYTES))
    assert caught.value.status_code == 413
    still_serves(client)


def test_unknown_route_is_openai_shaped_404(gateway, token: str) -> None:
    response = httpx.get(f"{gateway.url}/v1/nothing-here", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 404
    assert set(response.json()["error"]) == ERROR_KEYS
