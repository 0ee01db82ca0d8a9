"""The Responses API and Chat Completions, translated into each other.

Chat Completions -> Responses (a provider that must be called on `/responses`,
such as xAI for its server-side search tools):

    responses_request(chat body, tools)     the request
    chat_completion(response, exchange)     the answer, as a `chat.completion`
    ResponsesStream                         the stream events, as `chat.completion.chunk`s

Responses -> Chat Completions (a `/v1/responses` request served by a provider
that only speaks Chat Completions):

    chat_body(responses request)            the request
    response_object(completion, shape)      the answer, as a `response`
    ChatToResponsesStream                   chat chunks in, Responses stream events out

Responses -> Responses (a provider that speaks it, `Provider.speaks_responses`):

    ResponsesRelay                          the stream passed on, its usage read
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from ..errors import InvalidRequest, UpstreamError, UpstreamUnreachable, clip
from ..exchange import (
    Exchange,
    StreamTranslator,
    chunk_shell,
    estimated_usage,
    json_object_from,
    usage_chunk,
)
from ..sse import DONE, EventSplitter, encode
from .chat_stream import ChatStreamReader

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


# the other direction: a Responses request served by a Chat Completions provider ---------


def chat_body(request: dict[str, Any], *, native: bool = False) -> dict[str, Any]:
    """The Chat Completions body for a `/v1/responses` request; 400 naming the field when malformed.

    Stateless: `previous_response_id` and `store: true` need a provider that keeps
    responses, so they are refused here (an absent `store` is taken as false),
    as are built-in tools and `input_file` parts; unless `native` (every
    deployment the request can reach takes the Responses body as it is): then
    they are left out of the chat body, which serves only the gateway's checks.
    `instructions` becomes the first (system) message, `max_output_tokens`
    becomes `max_tokens`, `text.format` becomes `response_format`, function
    tools and `function_call` / `function_call_output` items become tools,
    `tool_calls` and `tool` messages.
    """
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string.", param="model")
    if not native and request.get("previous_response_id") is not None:
        raise InvalidRequest(
            "'previous_response_id' is not supported for this model: the gateway does not keep "
            "responses; send the whole conversation in 'input'.",
            param="previous_response_id",
        )
    if not native and request.get("store") is True:
        raise InvalidRequest(
            "'store: true' is not supported for this model: the gateway does not keep responses.",
            param="store",
        )
    messages: list[dict[str, Any]] = []
    instructions = request.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InvalidRequest("'instructions' must be a string.", param="instructions")
        messages.append({"role": "system", "content": instructions})
    messages.extend(_chat_messages(request.get("input"), native))
    if native and not messages:
        messages.append({"role": "user", "content": ""})  # e.g. only files: the provider reads them
    if not messages:
        raise InvalidRequest("'input' is required.", param="input")
    chat: dict[str, Any] = {"model": model, "messages": messages}
    limit = request.get("max_output_tokens")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidRequest("'max_output_tokens' must be a positive integer.", param="max_output_tokens")
        chat["max_tokens"] = limit
    for name in ("temperature", "top_p", "user", "parallel_tool_calls", "top_logprobs"):
        if request.get(name) is not None:
            chat[name] = request[name]
    reasoning = request.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        chat["reasoning_effort"] = reasoning["effort"]
    response_format = _response_format(request.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    tools = [_chat_tool(t, i) for i, t in enumerate(_list(request.get("tools"), "tools"))
             if not (native and _built_in(t))]
    if tools:
        chat["tools"] = tools
        if request.get("tool_choice") is not None:
            chat["tool_choice"] = _chat_tool_choice(request["tool_choice"])
    if request.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    elif request.get("stream") not in (None, False):
        raise InvalidRequest("'stream' must be true or false.", param="stream")
    return chat


def _list(value: Any, param: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"'{param}' must be an array.", param=param)
    return value


def _built_in(tool: Any) -> bool:
    """A tool the provider runs itself (`web_search`, `file_search`, ...): not a function."""
    return isinstance(tool, dict) and isinstance(tool.get("type"), str) and tool["type"] != "function"


def _chat_messages(input_: Any, native: bool = False) -> list[dict[str, Any]]:
    if isinstance(input_, str):
        return [{"role": "user", "content": input_}]
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(_list(input_, "input")):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object.", param=where)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_chat_message(item, where, native))
        elif kind == "function_call":
            call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
            if not all(isinstance(v, str) for v in (call_id, name, arguments)):
                raise InvalidRequest(f"{where} needs string 'call_id', 'name' and 'arguments'.", param=where)
            call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)  # parallel calls: one assistant turn
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            if not isinstance(item.get("call_id"), str):
                raise InvalidRequest(f"{where}.call_id must be a string.", param=where)
            text = output if isinstance(output, str) else text_of(output)
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
        elif kind in ("reasoning", "item_reference"):
            continue  # nothing a Chat Completions provider can read
        else:
            raise InvalidRequest(f"{where}: input items of type {clip(str(kind))!r} are not supported.", param=where)
    return messages


def _chat_message(item: dict[str, Any], where: str, native: bool = False) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise InvalidRequest(f"{where}.role must be user, assistant, system or developer.", param=where)
    role = "system" if role == "developer" else role
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(_list(content, f"{where}.content")):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            if not isinstance(part.get("text"), str):
                raise InvalidRequest(f"{at}.text must be a string.", param=at)
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise InvalidRequest(f"{at}.image_url must be a URL or data URL string.", param=at)
            image: dict[str, Any] = {"url": url}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "refusal" or (native and kind == "input_file"):
            continue
        else:
            raise InvalidRequest(f"{at}: content parts of type {clip(str(kind))!r} are not supported.", param=at)
    if role != "user" or all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "".join(p.get("text", "") for p in parts)}
    return {"role": role, "content": parts}


def _response_format(text: Any) -> dict[str, Any] | None:
    """Responses `text.format` as Chat's `response_format`, whose json_schema is nested."""
    if text is None:
        return None
    if not isinstance(text, dict):
        raise InvalidRequest("'text' must be an object.", param="text")
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise InvalidRequest("'text.format.type' must be text, json_object or json_schema.", param="text")
    if fmt["type"] != "json_schema":
        return {"type": fmt["type"]}
    if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
        raise InvalidRequest("'text.format' json_schema needs a string 'name' and an object 'schema'.", param="text")
    schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
    return {"type": "json_schema", "json_schema": schema}


def _chat_tool(tool: Any, i: int) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("name"), str):
        raise InvalidRequest(
            f"tools[{i}]: only function tools with a string 'name' can be used with this model.",
            param=f"tools[{i}]",
        )
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
    return {"type": "function", "function": function}


def _chat_tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest("'tool_choice' must be auto, none, required or a function.", param="tool_choice")


def responses_usage(usage: Any) -> dict[str, Any] | None:
    """Chat usage in Responses names (the inverse of `chat_usage`)."""
    if not isinstance(usage, dict) or not isinstance(usage.get("prompt_tokens"), int):
        return None
    prompt, completion = usage["prompt_tokens"], usage.get("completion_tokens") or 0
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


class ResponseShape:
    """What a translated `response` object repeats from its request, and its ids."""

    def __init__(self, request: dict[str, Any], model: str) -> None:
        self.id = f"resp_{uuid.uuid4().hex}"
        self.created_at = int(time.time())
        self.model = model
        self.request = request

    def response(self, status: str, output: list[dict[str, Any]], usage: Any = None,
                 incomplete: str | None = None) -> dict[str, Any]:
        request = self.request
        text = request.get("text") if isinstance(request.get("text"), dict) else {"format": {"type": "text"}}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": request.get("instructions"),
            "max_output_tokens": request.get("max_output_tokens"),
            "model": self.model,
            "output": output,
            "parallel_tool_calls": request.get("parallel_tool_calls", True) is not False,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": False,
            "temperature": request.get("temperature"),
            "text": text,
            "tool_choice": request.get("tool_choice") or "auto",
            "tools": request.get("tools") or [],
            "top_p": request.get("top_p"),
            "truncation": "disabled",
            "usage": responses_usage(usage),
            "user": request.get("user"),
            "metadata": request.get("metadata") if isinstance(request.get("metadata"), dict) else {},
        }


def _status(finish: Any) -> tuple[str, str | None]:
    if finish == "length":
        return "incomplete", "max_output_tokens"
    if finish == "content_filter":
        return "incomplete", "content_filter"
    return "completed", None


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" else []
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "function_call", "id": item_id, "call_id": call_id, "name": name,
        "arguments": arguments, "status": status,
    }


def response_object(completion: dict[str, Any], shape: ResponseShape) -> dict[str, Any]:
    """A `chat.completion` (its first choice) as a Responses `response` object."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    said = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    if isinstance(said.get("content"), str) and said["content"]:
        output.append(_message_item(f"msg_{uuid.uuid4().hex}", said["content"]))
    for call in said.get("tool_calls") or ():
        if not isinstance(call, dict):
            continue
        function = call.get("function") or {}
        arguments = function.get("arguments")
        output.append(
            _call_item(
                f"fc_{uuid.uuid4().hex}",
                str(call.get("id") or f"call_{uuid.uuid4().hex[:24]}"),
                str(function.get("name") or ""),
                arguments if isinstance(arguments, str) else "{}",
            )
        )
    status, incomplete = _status(choice.get("finish_reason"))
    return shape.response(status, output, completion.get("usage"), incomplete)


class ChatToResponsesStream(ChatStreamReader):
    """`chat.completion.chunk` SSE in, Responses stream events out.

    Opens with `response.created` and `response.in_progress`; text goes into
    one message item (`output_item.added`, `content_part.added`,
    `output_text.delta` …, then the `done` events), each tool call into a
    `function_call` item with `function_call_arguments.delta` events; an item
    is closed before the next opens. Ends with `response.completed` (or
    `response.incomplete`) carrying the whole response and its usage, sent at
    `[DONE]` or at the end. The gateway's `data: {"error": …}` event becomes
    `response.failed`.
    """

    def __init__(self, shape: ResponseShape) -> None:
        super().__init__()
        self._shape = shape
        self._sequence = 0
        self._output: list[dict[str, Any]] = []
        self._open: tuple[str, int] | None = None  # ("text", 0) or ("tool", chat tool index)
        self._written = ""
        self._finished_by: Any = None  # the chat finish reason
        self._usage_seen: Any = None

    def _event(self, kind: str, **data: Any) -> bytes:
        self._sequence += 1
        body = {"type": kind, "sequence_number": self._sequence, **data}
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(body) + b"\n\n"

    def _usage(self, usage: dict[str, Any]) -> None:
        self._usage_seen = usage

    def _finish_reason(self, reason: str) -> None:
        self._finished_by = reason

    def _failed(self, message: str) -> bytes:
        response = self._shape.response("failed", self._output)
        response["error"] = {"code": "server_error", "message": message}
        return self._event("response.failed", response=response)

    def _start(self, chunk: dict[str, Any]) -> bytes:
        response = self._shape.response("in_progress", [])
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def _text(self, text: str) -> bytes:
        out = b""
        if self._open != ("text", 0):
            out = self._close()
            item = _message_item(f"msg_{uuid.uuid4().hex}", "", "in_progress")
            self._output.append(item)
            self._open, self._written = ("text", 0), ""
            index = len(self._output) - 1
            out += self._event("response.output_item.added", output_index=index, item=item)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out += self._event(
                "response.content_part.added", item_id=item["id"], output_index=index, content_index=0, part=part
            )
        self._written += text
        item = self._output[-1]
        return out + self._event(
            "response.output_text.delta", item_id=item["id"], output_index=len(self._output) - 1,
            content_index=0, delta=text, logprobs=[],
        )

    def _tool(self, call: dict[str, Any]) -> bytes:
        function = call.get("function") or {}
        index = call.get("index", 0)
        out = b""
        if self._open != ("tool", index):
            out = self._close()
            item = _call_item(
                f"fc_{uuid.uuid4().hex}", str(call.get("id") or f"call_{uuid.uuid4().hex[:24]}"),
                str(function.get("name") or ""), "", "in_progress",
            )
            self._output.append(item)
            self._open = ("tool", index)
            out += self._event("response.output_item.added", output_index=len(self._output) - 1, item=item)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item = self._output[-1]
            item["arguments"] += arguments
            out += self._event(
                "response.function_call_arguments.delta", item_id=item["id"],
                output_index=len(self._output) - 1, delta=arguments,
            )
        return out

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        kind, _ = self._open
        self._open = None
        index = len(self._output) - 1
        item = self._output[index]
        if kind == "text":
            done = _message_item(item["id"], self._written)
            self._output[index] = done
            part = done["content"][0]
            return (
                self._event("response.output_text.done", item_id=item["id"], output_index=index,
                            content_index=0, text=self._written, logprobs=[])
                + self._event("response.content_part.done", item_id=item["id"], output_index=index,
                              content_index=0, part=part)
                + self._event("response.output_item.done", output_index=index, item=done)
            )
        item["status"] = "completed"
        return self._event(
            "response.function_call_arguments.done", item_id=item["id"], output_index=index,
            name=item["name"], arguments=item["arguments"],
        ) + self._event("response.output_item.done", output_index=index, item=item)

    def _finish(self) -> bytes:
        out = self._close()
        status, incomplete = _status(self._finished_by)
        response = self._shape.response(status, self._output, self._usage_seen, incomplete)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._event(kind, response=response)


class ResponsesRelay(StreamTranslator):
    """A provider's Responses API stream, passed on to a client that asked for one.

    The bytes go out as they come, unless `model_map` renamed the model: then
    each event is re-sent with the public name in its `response.model`. The usage
    is read from the final event (`response.completed` or `response.incomplete`).
    """

    FINAL = (b'"response.completed"', b'"response.incomplete"', b'"response.failed"')

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._events = EventSplitter()

    def feed(self, piece: bytes) -> bytes:
        return self._relay(self._events.feed(piece), piece)

    def end(self) -> bytes:
        return self._relay(self._events.flush(), b"")

    def _relay(self, events: Any, raw: bytes) -> bytes:
        renamed = self._exchange.renamed
        out: list[bytes] = []
        for event in events:
            final = any(kind in event.data for kind in self.FINAL)
            data = self._read(event.data, final, renamed) if renamed or final else event.data
            if renamed:
                name = b"event: " + event.name + b"\n" if event.name else b""
                out.append(name + b"data: " + data + b"\n\n")
        return b"".join(out) if renamed else raw

    def _read(self, raw: bytes, final: bool, renamed: bool) -> bytes:
        """The event's data: its usage recorded when final, its model the public name when renamed."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
        response = data.get("response") if isinstance(data, dict) else None
        if not isinstance(response, dict):
            return raw
        if final:
            self._exchange.usage = chat_usage(response.get("usage")) or self._exchange.usage
        if not (renamed and "model" in response):
            return raw
        response["model"] = self._exchange.model
        return orjson.dumps(data)
