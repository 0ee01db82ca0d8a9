"""A `/v1/responses` request served through Chat Completions: the request, the `response` object
and the stream events, checked with the `openai` SDK's own types and its stream state."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from llm_wrapper.errors import InvalidRequest
from llm_wrapper.exchange import Exchange
from llm_wrapper.sse import EventSplitter
from llm_wrapper.translation.responses import (
    ChatToResponsesStream,
    ResponseShape,
    ResponsesRelay,
    chat_body,
    response_object,
)

TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
EVENT = TypeAdapter(ResponseStreamEvent)


# requests ---------------------------------------------------------------------


def test_a_string_input_with_instructions_and_limits():
    chat = chat_body(
        {
            "model": "m",
            "input": "Hello",
            "instructions": "Be brief.",
            "max_output_tokens": 50,
            "temperature": 0.3,
            "reasoning": {"effort": "low"},
        }
    )
    assert chat == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        "max_tokens": 50,
        "temperature": 0.3,
        "reasoning_effort": "low",
    }


def test_items_text_images_and_a_function_call_round_trip():
    items = [
        {"role": "developer", "content": "Rules."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this, and the weather?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBOR", "detail": "low"},
            ],
        },
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
        {"type": "function_call_output", "call_id": "call_2", "output": "25C"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Paris 18C, Rome 25C."}]},
    ]
    chat = chat_body({"model": "m", "input": items, "tools": [TOOL], "tool_choice": "required"})
    assert chat["messages"] == [
        {"role": "system", "content": "Rules."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this, and the weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "25C"},
        {"role": "assistant", "content": "Paris 18C, Rome 25C."},
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {k: TOOL[k] for k in ("name", "description", "parameters")},
        }
    ]
    assert chat["tool_choice"] == "required"


def test_text_format_json_schema_becomes_response_format():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    chat = chat_body(
        {
            "model": "m",
            "input": "x",
            "text": {"format": {"type": "json_schema", "name": "thing", "schema": schema, "strict": True}},
        }
    )
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "thing", "schema": schema, "strict": True},
    }


def test_stream_asks_for_usage_upstream():
    chat = chat_body({"model": "m", "input": "x", "stream": True})
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"store": True}, "store"),
        ({"model": None}, "model"),
        ({"input": None}, "input"),
        ({"input": 5}, "input"),
        ({"input": [5]}, "input[0]"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0]"),
        ({"input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]}, "input[0].content[0]"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input[0].content[0]"),
        ({"input": [{"type": "web_search_call"}]}, "input[0]"),
        ({"input": [{"type": None}]}, "input[0]"),  # found by the fuzz test: once a 500
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"tools": [TOOL], "tool_choice": {"type": "robot"}}, "tool_choice"),
        ({"text": {"format": {"type": "json_schema"}}}, "text"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"instructions": 5}, "instructions"),
        ({"stream": "yes"}, "stream"),
    ],
)
def test_malformed_or_stateful_requests_are_400_naming_the_field(fields, param):
    with pytest.raises(InvalidRequest) as caught:
        chat_body({"model": "m", "input": "hi", **fields})
    assert caught.value.param == param


# answers ----------------------------------------------------------------------

USAGE = {
    "prompt_tokens": 11,
    "completion_tokens": 7,
    "total_tokens": 18,
    "prompt_tokens_details": {"cached_tokens": 3},
}


def completion(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "provider-name",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        "usage": USAGE,
    }


def test_a_text_answer_is_a_valid_response_object():
    request = {"model": "public", "input": "hi", "instructions": "Be brief.", "max_output_tokens": 9}
    out = response_object(completion({"content": "Hello!"}), ResponseShape(request, "public"))
    parsed = Response.model_validate(out)
    assert parsed.output_text == "Hello!" and parsed.status == "completed" and parsed.model == "public"
    assert parsed.instructions == "Be brief." and parsed.max_output_tokens == 9 and parsed.store is False
    assert parsed.usage.input_tokens == 11 and parsed.usage.output_tokens == 7 and parsed.usage.total_tokens == 18
    assert parsed.usage.input_tokens_details.cached_tokens == 3
    assert parsed.id.startswith("resp_")


def test_tool_calls_are_function_call_items_and_length_is_incomplete():
    calls = [{"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]
    request = {"model": "m", "input": "x", "tools": [TOOL]}
    parsed = Response.model_validate(
        response_object(completion({"content": None, "tool_calls": calls}, "tool_calls"), ResponseShape(request, "m"))
    )
    (item,) = parsed.output
    assert item.type == "function_call" and item.call_id == "call_9" and item.arguments == '{"city":"Oslo"}'
    cut = Response.model_validate(response_object(completion({"content": "Hal"}, "length"), ResponseShape(request, "m")))
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"


# streams ----------------------------------------------------------------------


def sse(*chunks: Any) -> bytes:
    return b"".join(b"data: " + (c if isinstance(c, bytes) else orjson.dumps(c)) + b"\n\n" for c in chunks)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-s", "object": "chat.completion.chunk", "model": "p", "choices": choices, **extra}


def translate(raw: bytes, request: dict[str, Any], step: int = 4) -> list[dict[str, Any]]:
    stream = ChatToResponsesStream(ResponseShape(request, "public"))
    out = b"".join(stream.feed(raw[i : i + step]) for i in range(0, len(raw), step)) + stream.end()
    events = []
    for event in EventSplitter().feed(out):
        data = orjson.loads(event.data)
        assert event.name.decode() == data["type"]
        EVENT.validate_python(data)  # every event is one the SDK knows, with every field it requires
        events.append(data)
    assert [e["sequence_number"] for e in events] == list(range(1, len(events) + 1))
    return events


def final_response(events: list[dict[str, Any]], request: dict[str, Any]) -> Any:
    state = ResponseStreamState(input_tools=request.get("tools") or omit, text_format=omit)
    for event in events:
        state.handle_event(EVENT.validate_python(event))
    return Response.model_validate(events[-1]["response"]), state


def test_a_text_stream_opens_with_created_and_ends_with_completed_and_usage():
    request = {"model": "public", "input": "hi"}
    raw = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        chunk(None, usage=USAGE),
        b"[DONE]",
    )
    events = translate(raw, request)
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed" and kinds.count("response.completed") == 1
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "Hello"
    final, _ = final_response(events, request)
    assert final.output_text == "Hello" and final.usage.total_tokens == 18 and final.model == "public"


def test_text_then_tool_calls_stream_as_separate_items():
    request = {"model": "public", "input": "x", "tools": [TOOL]}
    raw = sse(
        chunk({"content": "Checking."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "get_weather", "arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
        b"[DONE]",
    )
    events = translate(raw, request, step=3)
    final, _ = final_response(events, request)
    assert [item.type for item in final.output] == ["message", "function_call", "function_call"]
    assert final.output[1].call_id == "call_a" and final.output[1].arguments == '{"city":"Paris"}'
    assert final.output[2].call_id == "call_b"
    args = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert args == ['{"city":', '"Paris"}', "{}"]
    opened = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    closed = [e["output_index"] for e in events if e["type"] == "response.output_item.done"]
    assert opened == closed == [0, 1, 2]


def test_a_stream_cut_at_the_length_limit_ends_incomplete():
    events = translate(sse(chunk({"content": "x"}), chunk({}, "length")), {"model": "m", "input": "x"})
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_the_gateways_error_event_becomes_response_failed():
    raw = sse(chunk({"content": "part"}), {"error": {"message": "upstream broke", "type": "upstream_error"}})
    events = translate(raw, {"model": "m", "input": "x"})
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["message"] == "upstream broke"
    assert "response.completed" not in [e["type"] for e in events]


# a provider's own Responses stream, relayed ----------------------------------------------------


RELAYED = [
    {"type": "response.created", "response": {"id": "resp_1", "model": "upstream-name", "usage": None}},
    {"type": "response.output_text.delta", "delta": "Hi"},
    {"type": "response.completed", "response": {"id": "resp_1", "model": "upstream-name",
                                                "usage": {"input_tokens": 5, "output_tokens": 2}}},
]
RELAYED_BYTES = b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in RELAYED)


@pytest.mark.parametrize("renamed", [False, True])
def test_a_relayed_stream_split_anywhere_keeps_its_bytes_or_renames_and_reads_the_usage(renamed: bool) -> None:
    exchange = Exchange(model="public-name", stream=True, renamed=renamed)
    relay = ResponsesRelay(exchange)
    out = b"".join(relay.feed(RELAYED_BYTES[i:i + 7]) for i in range(0, len(RELAYED_BYTES), 7)) + relay.end()
    assert exchange.usage == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    if not renamed:
        assert out == RELAYED_BYTES
        return
    events = list(EventSplitter().feed(out))
    assert [e.name for e in events] == [e["type"].encode() for e in RELAYED]
    data = [orjson.loads(e.data) for e in events]
    assert [d.get("response", {}).get("model") for d in data] == ["public-name", None, "public-name"]
    assert data[1] == RELAYED[1]


def test_native_only_features_are_refused_unless_every_deployment_speaks_responses() -> None:
    request = {
        "model": "m", "previous_response_id": "resp_0", "store": True, "tools": [{"type": "web_search"}, TOOL],
        "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file_1"},
                                               {"type": "input_text", "text": "read it"}]}],
    }
    for name in ("previous_response_id", "store", "tools", "input"):  # each alone is refused
        with pytest.raises(InvalidRequest) as refused:
            chat_body({"model": "m", "input": "hi", name: request[name]})
        assert refused.value.param.startswith(name)
    chat = chat_body(request, native=True)  # only for the gateway's checks: the provider gets `request`
    assert chat["messages"] == [{"role": "user", "content": "read it"}]
    assert [t["function"]["name"] for t in chat["tools"]] == [TOOL["name"]]
    assert chat_body({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_file", "file_id": "f"}]}]}, native=True)["messages"] == [{"role": "user", "content": ""}]
