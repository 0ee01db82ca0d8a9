"""xAI (Grok): OpenAI-compatible Chat Completions, and Live Search through the Responses API.

xAI removed Live Search: `search_parameters` now gets HTTP 410 on both
`/chat/completions` and `/responses`. Its successor is the server-side
`web_search` and `x_search` tools, which exist only on the Responses API. A
request carrying `search_parameters` (the client's, or the configured
`payload_extra_parameters`, which win) is therefore sent to `{base_url}/responses`
with the matching tools, and the answer is turned back into Chat Completions,
keeping the citations as the top-level `citations` list Live Search returned.

Everything else (no `search_parameters`, `mode: "off"`, or a request using the
client's own function tools, which the Responses translation does not carry)
stays plain Chat Completions with the field removed.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from ..errors import UpstreamError, UpstreamUnreachable, status_type
from ..sse import DONE, EventSplitter, encode
from .base import (
    Call,
    Exchange,
    Provider,
    StreamTranslator,
    chunk_shell,
    estimated_usage,
    usage_chunk,
)

log = logging.getLogger(__name__)

RESPONSES = "responses"
WEB_SOURCES = {"web", "news", "rss"}


class XAIProvider(Provider):
    def prepare(self, body: dict[str, Any], exchange: Exchange) -> Call:
        body = self.merge_extra(body)
        search = body.get("search_parameters")
        body = {k: v for k, v in body.items() if k != "search_parameters"}
        if not _wants_search(search) or not isinstance(search, dict):
            return Call(self.url(self.chat_path), orjson.dumps(body))
        if _uses_functions(body):
            log.warning("xAI search is not combined with client function tools; searching skipped")
            return Call(self.url(self.chat_path), orjson.dumps(body))
        exchange.state["citations"] = search.get("return_citations", True) is not False
        exchange.prompt_chars = sum(
            len(_text(m.get("content"))) for m in body["messages"] if isinstance(m, dict)
        )
        return Call(
            self.url("/responses"), orjson.dumps(responses_request(body, search)), kind=RESPONSES
        )

    def translate_completion(self, call: Call, raw: bytes, exchange: Exchange) -> bytes:
        if call.kind != RESPONSES:
            return super().translate_completion(call, raw, exchange)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ValueError("the provider's answer is not JSON") from None
        if not isinstance(data, dict):
            raise ValueError("the provider's answer is not a JSON object")
        if data.get("status") == "failed" or data.get("error"):
            raise _upstream_error(self.name, data.get("error"))
        return orjson.dumps(chat_completion(data, exchange))

    def stream_translator(self, call: Call, exchange: Exchange) -> StreamTranslator:
        if call.kind != RESPONSES:
            return super().stream_translator(call, exchange)
        return ResponsesStream(self.name, exchange)


# request mapping -----------------------------------------------------------


def _wants_search(search: Any) -> bool:
    """Live Search's default mode was "auto"; only an explicit "off" turned it off."""
    return isinstance(search, dict) and search.get("mode", "auto") != "off"


def _uses_functions(body: dict[str, Any]) -> bool:
    """Client tools mean a tool-calling conversation: the client's contract wins over configured search."""
    if body.get("tools") or body.get("functions"):
        return True
    return any(
        isinstance(m, dict) and (m.get("role") in ("tool", "function") or m.get("tool_calls"))
        for m in body.get("messages") or ()
    )


def responses_request(body: dict[str, Any], search: dict[str, Any]) -> dict[str, Any]:
    """The Responses API body for a Chat Completions body and its Live Search parameters.

    `store: false` because the gateway never continues a response by id, so xAI
    need not keep the conversation. Chat fields without a Responses counterpart
    here (`n`, `stop`, penalties, `seed`, `logprobs`) are dropped.
    """
    request: dict[str, Any] = {
        "model": body["model"],
        "input": [_input_message(m) for m in body["messages"] if isinstance(m, dict)],
        "tools": search_tools(search),
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
        return {"type": "json_schema", **(response_format.get("json_schema") or {})}
    return response_format


def search_tools(search: dict[str, Any]) -> list[dict[str, Any]]:
    """`web_search` and/or `x_search` for Live Search's `sources` (none given: both, as Live Search did).

    One `web_search` tool serves every web, news and rss source, so filters are
    widened rather than narrowed: a domain is allowed if any source allows it
    (no allow-list if one source has none) and excluded only if every source
    excludes it. xAI takes either an allow-list or an exclusion list, not both;
    an allow-list already leaves the rest out, so it wins. RSS feeds, country,
    safe_search, max_search_results and the engagement filters have no
    equivalent and are dropped. Dates apply to `x_search` only, the one tool
    that takes them.
    """
    sources = [s for s in search.get("sources") or () if isinstance(s, dict)]
    if not sources:
        sources = [{"type": "web"}, {"type": "x"}]
    tools: list[dict[str, Any]] = []
    web = [s for s in sources if s.get("type") in WEB_SOURCES]
    if web:
        tools.append(
            {
                "type": "web_search",
                **_widened(web, "allowed_websites", "excluded_websites", "_domains"),
            }
        )
    # `x_handles` is Live Search's older name for `included_x_handles`.
    x = [
        {**s, "included_x_handles": s.get("included_x_handles") or s.get("x_handles")}
        for s in sources
        if s.get("type") == "x"
    ]
    if x:
        tool = {
            "type": "x_search",
            **_widened(x, "included_x_handles", "excluded_x_handles", "_x_handles"),
        }
        tool.update({name: search[name] for name in ("from_date", "to_date") if search.get(name)})
        tools.append(tool)
    return tools or [{"type": "web_search"}, {"type": "x_search"}]


def _widened(
    sources: list[dict[str, Any]], allow: str, exclude: str, suffix: str
) -> dict[str, list[str]]:
    """One tool's filters for several sources: `allowed{suffix}` or `excluded{suffix}`, or none."""
    allowed = [s.get(allow) or [] for s in sources]
    if all(allowed):
        return {"allowed" + suffix: _unique(v for group in allowed for v in group)}
    everywhere = [
        v
        for v in _unique(sources[0].get(exclude) or ())
        if all(v in (s.get(exclude) or ()) for s in sources)
    ]
    return {"excluded" + suffix: everywhere} if everywhere else {}


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
    return {"role": role, "content": _text(content)}


def _text(content: Any) -> str:
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


def chat_completion(response: dict[str, Any], exchange: Exchange) -> dict[str, Any]:
    """A Responses API answer as a `chat.completion` with the requested model and top-level `citations`."""
    text = response_text(response)
    exchange.completion_chars = len(text)
    usage = chat_usage(response.get("usage")) or estimated_usage(exchange)
    exchange.usage = usage
    answer: dict[str, Any] = {
        "id": exchange.id,
        "object": "chat.completion",
        "created": exchange.created,
        "model": exchange.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason(response),
            }
        ],
        "usage": usage,
    }
    if exchange.state.get("citations", True):
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


def _upstream_error(provider: str, error: Any, status: int = 502) -> UpstreamError:
    """xAI's error, flat (`{type:"error", code, message}`) or nested (`{error:{...}}`), as ours."""
    if isinstance(error, dict) and isinstance(error.get("error"), (dict, str)):
        error = error["error"]
    if isinstance(error, dict):
        message, code = error.get("message"), error.get("code")
    else:
        message, code = error, None
    failure = UpstreamError(
        f"{provider}: {message or 'the answer failed'}",
        status=status,
        code=str(code) if code is not None else None,
    )
    failure.type = status_type(status)
    return failure


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
    first and the error is raised on the next call. Every other event
    (tool progress, reasoning) is skipped. The event kind is read from the
    JSON `type`, falling back to the SSE `event:` name.
    """

    FINAL = ("response.completed", "response.done", "response.incomplete")

    def __init__(self, provider: str, exchange: Exchange) -> None:
        self._provider = provider
        self._exchange = exchange
        self._events = EventSplitter()
        self._started = False
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
                self._error = _upstream_error(self._provider, (failed or {}).get("error", failed))
                if not out:
                    raise self._error
                break  # the text before the error goes out first; the next call raises
            if kind == "response.output_text.delta" and data.get("delta"):
                out.extend(self._content(data["delta"]))
            elif kind == "response.output_text.annotation.added":
                self._urls.extend(_annotation_urls([data.get("annotation")]))
            elif kind == "response.output_text.done":
                self._urls.extend(_annotation_urls(data.get("annotations")))
            elif kind in self.FINAL:
                out.extend(self._final(data.get("response") or {}))
        return b"".join(out)

    def _content(self, text: str) -> list[bytes]:
        out = [] if self._started else [self._chunk({"role": "assistant", "content": ""})]
        self._started = True
        self._exchange.completion_chars += len(text)
        return [*out, self._chunk({"content": text})]

    def _final(self, response: dict[str, Any]) -> list[bytes]:
        """The closing chunks; the text too if the stream sent it only here."""
        exchange = self._exchange
        self._finished = True
        out: list[bytes] = []
        text = response_text(response)
        if not exchange.completion_chars and text:
            out.extend(self._content(text))
        elif not self._started:
            out.append(self._chunk({"role": "assistant", "content": ""}))
        extra: dict[str, Any] = {}
        if exchange.state.get("citations", True):
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
