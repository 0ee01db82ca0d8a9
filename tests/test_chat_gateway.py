"""The gateway's pure helpers, without HTTP: body checks, upstream error messages, whole answers as streams."""

from __future__ import annotations

import orjson
import pytest

from llm_wrapper.config import ProviderConfig
from llm_wrapper.errors import InvalidRequest, UpstreamError
from llm_wrapper.gateway import completion_as_stream, parse_chat_body
from llm_wrapper.providers import Exchange, Provider
from llm_wrapper.sse import EventSplitter

PROVIDER = Provider(ProviderConfig(key="p", name="Prov", base_url="https://x", api_key_env="K"), "k")


@pytest.mark.parametrize(
    ("status", "body", "message", "code", "kind"),
    [
        (400, b'{"error": {"message": "bad temp", "type": "invalid_request_error", "code": "x1"}}', "bad temp", "x1", "invalid_request_error"),
        (500, b'{"type": "error", "error": {"ref_id": "r", "message": "parallel broke"}}', "parallel broke", None, "server_error"),
        (410, b'{"error": "Live search is deprecated."}', "Live search is deprecated.", None, "invalid_request_error"),
        (422, b'{"detail": [{"loc": ["body"], "msg": "field required"}, {"msg": "too long"}]}', "field required; too long", None, "invalid_request_error"),
        (404, b'{"detail": "Not Found"}', "Not Found", None, "invalid_request_error"),
        (429, b'{"message": "slow down", "code": 7}', "slow down", "7", "rate_limit_exceeded"),
        (502, b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>", None, "server_error"),
        (503, b"", "HTTP 503", None, "server_error"),
    ],
)
def test_upstream_error_finds_the_message(status: int, body: bytes, message: str, code: str | None, kind: str) -> None:
    error = UpstreamError.from_body(PROVIDER.name, status, body)
    assert error.status == status and error.message == f"Prov: {message}"
    assert error.code == code and error.type == kind
    assert set(error.body()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"", None),
        (b"nul", None),
        (b'"text"', None),
        (b'{"model": "", "messages": [{}]}', "model"),
        (b'{"model": "m", "messages": {}}', "messages"),
    ],
)
def test_parse_chat_body_refuses(raw: bytes, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_body(raw)
    assert caught.value.status == 400 and caught.value.param == param


def test_parse_chat_body_accepts() -> None:
    body = parse_chat_body(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true}')
    assert body["model"] == "m" and body["stream"] is True


@pytest.mark.parametrize("include_usage", [True, False])
def test_completion_as_stream(include_usage: bool) -> None:
    exchange = Exchange(model="m", stream=True, include_usage=include_usage)
    completion = {
        "id": "c1", "object": "chat.completion", "created": 5, "model": "m", "citations": ["u"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello", "refusal": None}, "finish_reason": None}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    out = completion_as_stream(completion, exchange)
    events = [e.data for e in EventSplitter().feed(out)]
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert chunks[0] == {
        "id": "c1", "object": "chat.completion.chunk", "created": 5, "model": "m", "citations": ["u"],
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
    }
    assert len(chunks) == (2 if include_usage else 1)
    if include_usage:
        assert chunks[1] == {"id": "c1", "object": "chat.completion.chunk", "created": 5, "model": "m", "choices": [],
                             "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
