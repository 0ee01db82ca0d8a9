"""The Responses API and Chat Completions, translated into each other.

Chat Completions -> Responses (a provider that must be called on `/responses`,
such as xAI for its server-side search tools):

    responses_request(chat body, tools)     the request
    chat_completion(response, exchange)     the answer, as a `chat.completion`
    ResponsesStream                         the stream events, as `chat.completion.chunk`s

The other direction (a `/v1/responses` request served by a Chat Completions
provider) builds on the same item and usage mappings.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import InvalidRequest, UpstreamError, UpstreamUnreachable
from ..exchange import (
    Exchange,
    StreamTranslator,
    chunk_shell,
    estimated_usage,
    json_object_from,
    usage_chunk,
)
from ..sse import DONE, EventSplitter, encode

# request mapping -----------------------------------------------------------


def responses_request(body: dict[str, Any], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The Responses API body for a Chat Completions body, with the given (server-side) tools.

    `store: false` because the gateway never continues a response by id, so the
    provider need not keep the conversation. Chat fields without a Responses
    counterpart here (`n`, `stop`, penalties, `seed`, `logprobs`) are dropped.
    """
    request: dict[str, Any] = {
        "model": body["model"],
        "input": [_input_message(m) for m in body["messages"] if isinstance(m, dict)],
        "tools": tools,
        "store": False,
    }
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        request["max_output_tokens"] = max_tokens
    for name in ("temperature", "top_p", "user"):
        if body.get(name) is not None:
            request[name] = body[name]
    if body.get("reasoning_effort"):
        request["reasoning"] = {"effort": body["reasoning_effort"]}
    text_format = _text_format(body.get("response_format"))
    if text_format:
        request["text"] = {"format": text_format}
    if body.get("stream") is True:
        request["stream"] = True
    return request


def _text_format(response_format: Any) -> dict[str, Any] | None:
    """Chat's `response_format` as Responses `text.format`, whose json_schema is flattened."""
    if not isinstance(response_format, dict) or response_format.get("type") == "text":
        return None
    if response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema")
        if not isinstance(schema, dict):
            raise InvalidRequest("'response_format.json_schema' must be an object.", param="response_format")
        return {"type": "json_schema", **schema}
    return response_format


def _input_message(message: dict[str, Any]) -> dict[str, Any]:
    """A chat message as a Responses input message; content arrays become input_text/input_image parts."""
    role = message.get("role") or "user"
    content = message.get("content")
    if isinstance(content, list) and role == "user":
        parts = []
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                parts.append({"type": "input_text", "text": part.get("text", "")})
            elif part.get("type") == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, dict) else image
                item = {"type": "input_image", "image_url": url}
                if isinstance(image, dict) and image.get("detail"):
                    item["detail"] = image["detail"]
                parts.append(item)
        return {"role": role, "content": parts}
    return {"role": role, "content": text_of(content)}


def text_of(content: Any) -> str:
    """A message's content as plain text (the text parts of a content array, joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "")
            for p in content
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""




def _unique(items: Any) -> list[Any]:
    return list(dict.fromkeys(items))


# response mapping ----------------------------------------------------------


def chat_completion(response: dict[str, Any], exchange: Exchange, *, with_citations: bool = True) -> dict[str, Any]:
    """A Responses API answer as a `chat.completion` with the requested model (and top-level `citations`)."""
    text = response_text(response)
    reasoning = reasoning_text(response)
    exchange.completion_chars = len(text) + len(reasoning)
    usage = chat_usage(response.get("usage")) or estimated_usage(exchange)
    exchange.usage = usage
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if reasoning:
        message["reasoning_content"] = reasoning  # xAI's Chat Completions name for it
    answer: dict[str, Any] = {
        "id": exchange.id,
        "object": "chat.completion",
        "created": exchange.created,
        "model": exchange.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(response),
            }
        ],
        "usage": usage,
    }
    if with_citations:
        answer["citations"] = citations(response)
    return answer


def response_text(response: dict[str, Any]) -> str:
    """The answer text: every `output_text` part of every message item, in order.

    Items are read as messages when typed `message` or untyped with a `content`
    list (both shapes have been seen); `output_text` at the top level, which some
    servers add as a convenience, is the fallback.
    """
    texts = [
        part.get("text") or ""
        for item in response.get("output") or ()
        if isinstance(item, dict) and item.get("type", "message") == "message"
        for part in item.get("content") or ()
        if isinstance(part, dict) and part.get("type") == "output_text"
    ]
    if texts:
        return "".join(texts)
    fallback = response.get("output_text")
    return fallback if isinstance(fallback, str) else ""


def reasoning_text(response: dict[str, Any]) -> str:
    """What the model said of its reasoning: the `summary_text` parts of every `reasoning` item,
    or their `reasoning_text` content when there is no summary (empty when neither was sent)."""
    texts: list[str] = []
    for item in response.get("output") or ():
        if not isinstance(item, dict) or item.get("type") != "reasoning":
            continue
        parts = item.get("summary") or item.get("content") or ()
        texts.extend(
            part["text"] for part in parts if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return "\n\n".join(texts)


def citations(response: dict[str, Any]) -> list[str]:
    """Every cited URL once: the response's `citations` list (all sources the agent saw) and then
    the `url_citation` annotations on its text, for servers that send only one of the two."""
    urls: list[str] = []
    for entry in response.get("citations") or ():
        url = entry.get("url") if isinstance(entry, dict) else entry
        if isinstance(url, str):
            urls.append(url)
    for item in response.get("output") or ():
        for part in (item.get("content") or ()) if isinstance(item, dict) else ():
            if isinstance(part, dict):
                urls.extend(_annotation_urls(part.get("annotations")))
    return _unique(urls)


def _annotation_urls(annotations: Any) -> list[str]:
    return [
        a["url"]
        for a in annotations or ()
        if isinstance(a, dict) and a.get("type") == "url_citation" and isinstance(a.get("url"), str)
    ]


def finish_reason(response: dict[str, Any]) -> str:
    """ "length" when the answer stopped at `max_output_tokens` (status "incomplete"), else "stop"."""
    if response.get("status") != "incomplete":
        return "stop"
    reason = (response.get("incomplete_details") or {}).get("reason")
    return "content_filter" if reason == "content_filter" else "length"


def chat_usage(usage: Any) -> dict[str, Any] | None:
    """Responses usage (`input_tokens`/`output_tokens`) in Chat Completions names.

    Chat-style names are accepted too, since xAI has been seen to send them on
    `/responses`. xAI's billing counters (`num_sources_used`,
    `num_server_side_tools_used`) are kept as extra fields.
    """
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("input_tokens", usage.get("prompt_tokens"))
    completion = usage.get("output_tokens", usage.get("completion_tokens"))
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    total = usage.get("total_tokens")
    mapped: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total if isinstance(total, int) else prompt + completion,
    }
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens")
    if isinstance(cached, int):
        mapped["prompt_tokens_details"] = {"cached_tokens": cached}
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    if isinstance(reasoning, int):
        mapped["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    for name in ("num_sources_used", "num_server_side_tools_used"):
        if isinstance(usage.get(name), int):
            mapped[name] = usage[name]
    return mapped


def failure(provider: str, failed: Any, status: int = 502) -> UpstreamError:
    """A failed response (`status: "failed"` with its `error`, or an `error` event) as the provider's error."""
    if isinstance(failed, dict) and "error" in failed and not isinstance(failed.get("message"), str):
        failed = failed["error"] if isinstance(failed["error"], dict) else failed
    return UpstreamError.from_body(provider, status, failed or "the answer failed")


def translate_answer(provider: str, raw: bytes, exchange: Exchange, *, with_citations: bool = True) -> bytes:
    """A whole Responses answer as `chat.completion` bytes; raises ValueError on garbage, UpstreamError on failure."""
    data = json_object_from(raw, "the provider's answer")
    if data.get("status") == "failed" or data.get("error"):
        raise failure(provider, data.get("error"))
    return orjson.dumps(chat_completion(data, exchange, with_citations=with_citations))


# streaming -----------------------------------------------------------------


class ResponsesStream(StreamTranslator):
    """Responses API stream events in, `chat.completion.chunk` SSE out.

    Used: `response.output_text.delta` (text), `response.output_text.annotation.added`
    and `response.output_text.done` (citations), and the final
    `response.completed` (also seen as `response.done`) or `response.incomplete`
    with the whole response (citations, usage, status). An `error` event (flat,
    as OpenAI documents it, or with a nested `error` object) or `response.failed`
    raises an `UpstreamError`, so the gateway ends the stream with
    `data: {"error": …}`; text that arrived before it in the same read is sent
    first and the error is raised on the next call. Reasoning summary deltas
    become `reasoning_content` deltas (xAI's Chat Completions field). Every
    other event (tool progress) is skipped. The event kind is read from the
    JSON `type`, falling back to the SSE `event:` name.
    """

    FINAL = ("response.completed", "response.done", "response.incomplete")
    # Reasoning summaries, or the raw reasoning text where a server streams that instead.
    REASONING = ("response.reasoning_summary_text.delta", "response.reasoning_text.delta")

    def __init__(self, provider: str, exchange: Exchange, *, with_citations: bool = True) -> None:
        self._provider = provider
        self._exchange = exchange
        self._with_citations = with_citations
        self._events = EventSplitter()
        self._started = False
        self._sent: set[str] = set()  # which delta fields were sent: content, reasoning_content
        self._finished = False
        self._urls: list[str] = []
        self._error: UpstreamError | None = None

    def feed(self, piece: bytes) -> bytes:
        if self._error is not None:
            raise self._error
        return self._translate(self._events.feed(piece))

    def end(self) -> bytes:
        if self._error is not None:
            raise self._error
        out = self._translate(self._events.flush())
        if not self._finished:
            raise UpstreamUnreachable(
                f"{self._provider} ended the stream before the answer was complete."
            )
        return out + DONE

    def _translate(self, events: Any) -> bytes:
        out: list[bytes] = []
        for event in events:
            if self._finished or event.data == b"[DONE]":
                continue
            try:
                data = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                raise ValueError("the provider sent a stream event that is not JSON") from None
            if not isinstance(data, dict):
                continue
            kind = data.get("type") or event.name.decode("utf-8", "replace")
            if kind in ("error", "response.failed") or (not kind and "error" in data):
                failed = data.get("response") if kind == "response.failed" else data
                self._error = failure(self._provider, failed)
                if not out:
                    raise self._error
                break  # the text before the error goes out first; the next call raises
            if kind == "response.output_text.delta" and data.get("delta"):
                out.extend(self._content(data["delta"]))
            elif kind in self.REASONING and isinstance(data.get("delta"), str) and data["delta"]:
                out.extend(self._content(data["delta"], "reasoning_content"))
            elif kind == "response.output_text.annotation.added":
                self._urls.extend(_annotation_urls([data.get("annotation")]))
            elif kind == "response.output_text.done":
                self._urls.extend(_annotation_urls(data.get("annotations")))
            elif kind in self.FINAL:
                out.extend(self._final(data.get("response") or {}))
        return b"".join(out)

    def _content(self, text: str, field: str = "content") -> list[bytes]:
        """One delta of the answer (`content`) or of its reasoning (`reasoning_content`)."""
        out = [] if self._started else [self._chunk({"role": "assistant", "content": ""})]
        self._started = True
        self._exchange.completion_chars += len(text)
        self._sent.add(field)
        return [*out, self._chunk({field: text})]

    def _final(self, response: dict[str, Any]) -> list[bytes]:
        """The closing chunks; the text too if the stream sent it only here."""
        exchange = self._exchange
        self._finished = True
        out: list[bytes] = []
        # What the stream sent only in the completed response is not lost.
        reasoning = reasoning_text(response)
        if reasoning and "reasoning_content" not in self._sent:
            out.extend(self._content(reasoning, "reasoning_content"))
        text = response_text(response)
        if text and "content" not in self._sent:
            out.extend(self._content(text))
        elif not self._started:
            out.append(self._chunk({"role": "assistant", "content": ""}))
        extra: dict[str, Any] = {}
        if self._with_citations:
            extra["citations"] = _unique([*citations(response), *self._urls])
        choice = {
            "index": 0,
            "delta": {},
            "logprobs": None,
            "finish_reason": finish_reason(response),
        }
        out.append(encode(chunk_shell(exchange, [choice], **extra)))
        exchange.usage = chat_usage(response.get("usage")) or estimated_usage(exchange)
        if exchange.include_usage:
            out.append(encode(usage_chunk(exchange, exchange.usage)))
        return out

    def _chunk(self, delta: dict[str, Any]) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        return encode(chunk_shell(self._exchange, [choice]))
