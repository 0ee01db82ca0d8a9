"""Anthropic's Messages API and Chat Completions, translated into each other.

A `/v1/messages` request is served by any model through Chat Completions:

    chat_request(messages body)        the Chat Completions body for an Anthropic request
    message(chat completion, model)    the answer, as an Anthropic `message`
    MessagesStream                     `chat.completion.chunk` SSE in, Anthropic stream events out
    error_body(status, message)        an error in Anthropic's shape
    count_tokens(messages body)        the estimate `/v1/messages/count_tokens` answers

Anthropic's stream has a strict order that clients rely on: one
`message_start`, then for each content block `content_block_start`, its
deltas and `content_block_stop` (blocks never interleave), then one
`message_delta` carrying `stop_reason` and the usage, then `message_stop`.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from ..errors import InvalidRequest
from .chat_stream import ChatStreamReader

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


# request mapping -----------------------------------------------------------


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """The Chat Completions body for a Messages body; 400 naming the field when it is malformed.

    `system` becomes the first message; `tool_result` blocks become `tool`
    messages placed before the rest of their user turn (Chat Completions wants
    them right after the assistant's `tool_calls`); `tool_use` blocks become
    `tool_calls`; images become `image_url` parts (base64 as a data URL).
    `top_k` and thinking blocks have no Chat Completions counterpart and are
    left out.
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string.", param="model")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest("'max_tokens' is required and must be a positive integer.", param="max_tokens")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise InvalidRequest("'messages' is required and must be a non-empty array.", param="messages")
    messages: list[dict[str, Any]] = []
    system = _system_text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for i, message in enumerate(raw_messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidRequest(
                f"messages.{i} must be an object with role 'user' or 'assistant'.", param=f"messages.{i}"
            )
        content = message.get("content")
        if isinstance(content, str):
            messages.append({"role": message["role"], "content": content})
        elif isinstance(content, list):
            convert = _user_messages if message["role"] == "user" else _assistant_messages
            messages.extend(convert(content, f"messages.{i}"))
        else:
            raise InvalidRequest(f"messages.{i}.content must be a string or an array.", param=f"messages.{i}")
    chat: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    stop = body.get("stop_sequences")
    if stop:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequest("'stop_sequences' must be an array of strings.", param="stop_sequences")
        chat["stop"] = stop
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        chat["user"] = metadata["user_id"]
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
        choice = _tool_choice(body.get("tool_choice"), chat)
        if choice is not None:
            chat["tool_choice"] = choice
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    elif body.get("stream") not in (None, False):
        raise InvalidRequest("'stream' must be true or false.", param="stream")
    return chat


def _system_text(system: Any) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    if isinstance(system, list):
        return "\n\n".join(
            b["text"] for b in system if isinstance(b, dict) and isinstance(b.get("text"), str)
        )
    raise InvalidRequest("'system' must be a string or an array of text blocks.", param="system")


def _block(block: Any, where: str) -> dict[str, Any]:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise InvalidRequest(f"{where} must be an object with a string 'type'.", param=where)
    return block


def _text(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}.text must be a string.", param=where)
    return text


def _user_messages(content: list[Any], where: str) -> list[dict[str, Any]]:
    tool_results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, raw in enumerate(content):
        at = f"{where}.content.{j}"
        block = _block(raw, at)
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": _text(block, at)})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block.get("source"), at)}})
        elif kind == "tool_result":
            tool_id = block.get("tool_use_id")
            if not isinstance(tool_id, str):
                raise InvalidRequest(f"{at}.tool_use_id must be a string.", param=at)
            text = _result_text(block.get("content"), at)
            if block.get("is_error") is True:
                text = f"Error: {text}"
            tool_results.append({"role": "tool", "tool_call_id": tool_id, "content": text})
        # documents, thinking and other blocks have no Chat Completions form: left out
    out = list(tool_results)
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _result_text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return "".join(
            b["text"] for b in content if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        )
    raise InvalidRequest(f"{where}.content must be a string or an array of blocks.", param=where)


def _image_url(source: Any, where: str) -> str:
    if isinstance(source, dict):
        if source.get("type") == "base64" and isinstance(source.get("data"), str) and isinstance(
            source.get("media_type"), str
        ):
            return f"data:{source['media_type']};base64,{source['data']}"
        if source.get("type") == "url" and isinstance(source.get("url"), str):
            return source["url"]
    raise InvalidRequest(f"{where}.source must be a base64 or url image source.", param=where)


def _assistant_messages(content: list[Any], where: str) -> list[dict[str, Any]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, raw in enumerate(content):
        at = f"{where}.content.{j}"
        block = _block(raw, at)
        if block["type"] == "text":
            texts.append(_text(block, at))
        elif block["type"] == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise InvalidRequest(f"{at} needs a string 'id' and 'name'.", param=at)
            arguments = orjson.dumps(block.get("input") if block.get("input") is not None else {}).decode()
            calls.append(
                {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array.", param="tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise InvalidRequest(f"tools.{i} must be an object with a string 'name'.", param=f"tools.{i}")
        function: dict[str, Any] = {"name": tool["name"]}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        schema = tool.get("input_schema")
        function["parameters"] = schema if isinstance(schema, dict) else {"type": "object", "properties": {}}
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any, chat: dict[str, Any]) -> Any:
    if choice is None:
        return None
    if not isinstance(choice, dict):
        raise InvalidRequest("'tool_choice' must be an object.", param="tool_choice")
    if choice.get("disable_parallel_tool_use") is True:
        chat["parallel_tool_calls"] = False
    kind = choice.get("type")
    if kind == "tool":
        if not isinstance(choice.get("name"), str):
            raise InvalidRequest("'tool_choice.name' must be a string.", param="tool_choice")
        return {"type": "function", "function": {"name": choice["name"]}}
    mapped = {"auto": "auto", "any": "required", "none": "none"}.get(kind)  # type: ignore[arg-type]
    if mapped is None:
        raise InvalidRequest("'tool_choice.type' must be auto, any, tool or none.", param="tool_choice")
    return mapped


# response mapping ----------------------------------------------------------


def message_id(chat_id: Any) -> str:
    """An Anthropic-looking id (`msg_…`) derived from the chat completion's id, so logs can match them."""
    if isinstance(chat_id, str) and chat_id:
        tail = chat_id.split("-", 1)[-1] if chat_id.startswith("chatcmpl-") else chat_id
        return f"msg_{tail}"
    return f"msg_{uuid.uuid4().hex}"


def usage(chat_usage: Any) -> dict[str, int]:
    """Chat usage in Anthropic's names; cached prompt tokens as `cache_read_input_tokens`."""
    if not isinstance(chat_usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    prompt = chat_usage.get("prompt_tokens")
    completion = chat_usage.get("completion_tokens")
    out = {
        "input_tokens": prompt if isinstance(prompt, int) else 0,
        "output_tokens": completion if isinstance(completion, int) else 0,
    }
    cached = (chat_usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if isinstance(cached, int) and cached:
        out["cache_read_input_tokens"] = cached
    return out


def message(completion: dict[str, Any], model: str) -> dict[str, Any]:
    """A `chat.completion` (its first choice) as an Anthropic `message` named after the asked `model`."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    said = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if isinstance(said.get("content"), str) and said["content"]:
        content.append({"type": "text", "text": said["content"]})
    for call in said.get("tool_calls") or ():
        if not isinstance(call, dict):
            continue
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": function.get("name") or "",
                "input": _arguments(function.get("arguments")),
            }
        )
    return {
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage(completion.get("usage")),
    }


def _arguments(arguments: Any) -> Any:
    """Tool arguments (a JSON string in Chat Completions) as the object Anthropic's `input` is."""
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def error_body(status: int, text: str) -> dict[str, Any]:
    """An error as Anthropic sends it: `{"type": "error", "error": {"type", "message"}}`."""
    kind = ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": text}}


def count_tokens(body: dict[str, Any]) -> int:
    """An estimate of the request's input tokens: about four characters a token of everything
    the model reads (system, messages, tools), at least 1."""
    chat = chat_request({**body, "max_tokens": 1, "stream": False})
    chars = sum(len(orjson.dumps(m.get("content"))) for m in chat["messages"])
    chars += len(orjson.dumps(chat.get("tools") or []))
    return max(1, chars // 4)


# streaming -----------------------------------------------------------------


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


class MessagesStream(ChatStreamReader):
    """`chat.completion.chunk` SSE in (as the gateway sends it to Chat clients), Anthropic events out.

    Text deltas go into a text block; each tool call (by its index) into a
    `tool_use` block whose arguments stream as `input_json_delta`. A block is
    closed before the next one opens. `message_delta` waits for the usage
    chunk, which follows the finishing chunk, and is sent at `[DONE]` (or at
    the end, if the upstream sent no `[DONE]`). A `data: {"error": …}` event
    (the gateway's own way to end a failed stream) becomes Anthropic's
    `error` event.
    """

    def __init__(self, model: str) -> None:
        super().__init__()
        self._model = model
        self._block: tuple[str, int] | None = None  # ("text", 0) or ("tool", chat tool index)
        self._index = -1  # the Anthropic index of the open or last block
        self._stop_reason = "end_turn"
        self._usage_seen: dict[str, int] | None = None

    def _text(self, text: str) -> bytes:
        return self._open("text", 0, {"type": "text", "text": ""}) + self._delta(
            {"type": "text_delta", "text": text}
        )

    def _finish_reason(self, reason: str) -> None:
        self._stop_reason = STOP_REASONS.get(reason, "end_turn")

    def _usage(self, chat: dict[str, Any]) -> None:
        self._usage_seen = usage(chat)

    def _failed(self, message: str) -> bytes:
        # After the headers the status is gone: every failure mid-stream is Anthropic's api_error.
        return _event("error", {"error": {"type": "api_error", "message": message}})

    def _start(self, chunk: dict[str, Any]) -> bytes:
        message: dict[str, Any] = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"message": message})

    def _tool(self, call: dict[str, Any]) -> bytes:
        function = call.get("function") or {}
        index = call.get("index", 0)
        out = b""
        if self._block != ("tool", index):
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": function.get("name") or "",
                "input": {},
            }
            out = self._open("tool", index, block)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out += self._delta({"type": "input_json_delta", "partial_json": arguments})
        return out

    def _open(self, kind: str, index: int, block: dict[str, Any]) -> bytes:
        if self._block == (kind, index):
            return b""
        out = self._close()
        self._index += 1
        self._block = (kind, index)
        return out + _event("content_block_start", {"index": self._index, "content_block": block})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"index": self._index, "delta": delta})

    def _close(self) -> bytes:
        if self._block is None:
            return b""
        self._block = None
        return _event("content_block_stop", {"index": self._index})

    def _finish(self) -> bytes:
        out = self._close()
        delta = {"stop_reason": self._stop_reason, "stop_sequence": None}
        out += _event("message_delta", {"delta": delta, "usage": self._usage_seen or {"output_tokens": 0}})
        return out + _event("message_stop", {})
