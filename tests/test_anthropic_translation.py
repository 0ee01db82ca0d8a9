"""Anthropic Messages <-> Chat Completions: requests, answers and stream events, checked with the
`anthropic` SDK's own types and its own stream accumulator."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message

from llm_wrapper.errors import InvalidRequest
from llm_wrapper.sse import EventSplitter
from llm_wrapper.translation.anthropic import (
    MessagesStream,
    chat_request,
    count_tokens,
    error_body,
    message,
)

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def request(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], **fields}


# requests ---------------------------------------------------------------------


def test_system_first_then_messages_and_sampling_fields():
    chat = chat_request(
        request(
            system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
            stop_sequences=["END"],
            temperature=0.2,
            top_p=0.9,
            top_k=5,
            metadata={"user_id": "u1"},
        )
    )
    assert chat == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief.\n\nBe kind."}, {"role": "user", "content": "hi"}],
        "max_tokens": 100,
        "stop": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u1",
    }


def test_stream_asks_for_usage_upstream():
    chat = chat_request(request(stream=True))
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}


def test_images_become_image_url_parts():
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    chat = chat_request(request(messages=[{"role": "user", "content": content}]))
    assert chat["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        }
    ]


def test_a_tool_round_trip_becomes_tool_calls_and_tool_messages():
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]
    chat = chat_request(request(messages=messages, tools=[WEATHER], tool_choice={"type": "any"}))
    assert chat["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": WEATHER["input_schema"],
            },
        }
    ]
    assert chat["tool_choice"] == "required"


def test_named_tool_choice_and_no_parallel_calls():
    chat = chat_request(
        request(tools=[WEATHER], tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True})
    )
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["parallel_tool_calls"] is False


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"model": 5}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": ["hi"]}, "messages.0"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages.0.content.0"),
        ({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, "messages.0.content.0"),
        ({"system": 5}, "system"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"tools": [{"description": "no name"}]}, "tools.0"),
        ({"tools": [WEATHER], "tool_choice": {"type": "sometimes"}}, "tool_choice"),
        ({"stream": "yes"}, "stream"),
    ],
)
def test_malformed_requests_are_400_naming_the_field(fields, param):
    with pytest.raises(InvalidRequest) as caught:
        chat_request(request(**fields))
    assert caught.value.param == param


def test_count_tokens_grows_with_the_input():
    small = count_tokens(request())
    large = count_tokens(request(system="x" * 4000, tools=[WEATHER]))
    assert small >= 1 and large > small + 900


# answers ----------------------------------------------------------------------


def completion(message_fields: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "model": "provider-name",
        "choices": [{"index": 0, "message": {"role": "assistant", **message_fields}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
                  "prompt_tokens_details": {"cached_tokens": 4}},
    }


def test_a_text_answer_is_a_valid_anthropic_message():
    out = message(completion({"content": "Hello!"}), "claude-ish")
    parsed = Message.model_validate(out)
    assert parsed.id == "msg_abc123" and parsed.model == "claude-ish"
    assert parsed.content[0].type == "text" and parsed.content[0].text == "Hello!"
    assert parsed.stop_reason == "end_turn"
    assert parsed.usage.input_tokens == 11 and parsed.usage.output_tokens == 7
    assert parsed.usage.cache_read_input_tokens == 4


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")],
)
def test_finish_reasons_map_to_stop_reasons(finish, stop_reason):
    assert message(completion({"content": "x"}, finish), "m")["stop_reason"] == stop_reason


def test_tool_calls_become_tool_use_blocks_with_parsed_input():
    calls = [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]
    parsed = Message.model_validate(message(completion({"content": None, "tool_calls": calls}, "tool_calls"), "m"))
    (block,) = parsed.content
    assert block.type == "tool_use" and block.id == "call_1" and block.name == "get_weather"
    assert block.input == {"city": "Paris"}
    assert parsed.stop_reason == "tool_use"


def test_errors_have_anthropics_shape_and_type_names():
    assert error_body(429, "slow down") == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    assert error_body(401, "x")["error"]["type"] == "authentication_error"
    assert error_body(403, "x")["error"]["type"] == "permission_error"
    assert error_body(404, "x")["error"]["type"] == "not_found_error"
    assert error_body(400, "x")["error"]["type"] == "invalid_request_error"
    assert error_body(502, "x")["error"]["type"] == "api_error"


# streams ----------------------------------------------------------------------


def sse(*chunks: Any) -> bytes:
    return b"".join(
        b"data: " + (c if isinstance(c, bytes) else orjson.dumps(c)) + b"\n\n" for c in chunks
    )


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "model": "p", "choices": choices, **extra}


def translate(raw: bytes, step: int = 5) -> list[dict[str, Any]]:
    stream = MessagesStream("claude-ish")
    out = b"".join(stream.feed(raw[i : i + step]) for i in range(0, len(raw), step)) + stream.end()
    events = []
    for event in EventSplitter().feed(out):
        data = orjson.loads(event.data)
        assert event.name.decode() == data["type"]
        events.append(data)
    return events


def accumulate(events: list[dict[str, Any]]) -> Any:
    snapshot, buffers = None, {}
    for event in events:
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)
    return snapshot


def assert_well_ordered(events: list[dict[str, Any]]) -> None:
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds.count("message_start") == 1
    assert kinds[-2:] == ["message_delta", "message_stop"] and kinds.count("message_delta") == 1
    open_index = None
    for event in events:
        if event["type"] == "content_block_start":
            assert open_index is None, "a block opened before the last one closed"
            open_index = event["index"]
        elif event["type"] == "content_block_delta":
            assert event["index"] == open_index
        elif event["type"] == "content_block_stop":
            assert event["index"] == open_index
            open_index = None
    assert open_index is None


def test_a_text_stream_in_anthropic_order_with_usage():
    raw = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        chunk(None, usage={"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}),
        b"[DONE]",
    )
    events = translate(raw)
    assert_well_ordered(events)
    assert [e["type"] for e in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]
    final = accumulate(events)
    assert final.content[0].text == "Hello" and final.model == "claude-ish"
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 9 and final.usage.output_tokens == 2


def test_text_then_two_tool_calls_are_three_blocks_and_inputs_accumulate():
    raw = sse(
        chunk({"role": "assistant", "content": "Checking."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                               "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]}),
        chunk({}, "tool_calls"),
        b"[DONE]",
    )
    events = translate(raw, step=3)
    assert_well_ordered(events)
    final = accumulate(events)
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert final.content[1].id == "call_a" and final.content[1].input == {"city": "Paris"}
    assert final.content[2].id == "call_b" and final.content[2].input == {"city": "Rome"}
    assert final.stop_reason == "tool_use"


def test_a_stream_without_done_still_closes_properly():
    events = translate(sse(chunk({"content": "x"}), chunk({}, "length")))
    assert_well_ordered(events)
    assert accumulate(events).stop_reason == "max_tokens"


def test_the_gateways_error_event_becomes_anthropics_error_event():
    raw = sse(chunk({"content": "part"}), {"error": {"message": "upstream broke", "type": "upstream_error"}})
    events = translate(raw)
    assert events[0]["type"] == "message_start"
    assert events[-1] == {"type": "error", "error": {"type": "api_error", "message": "upstream broke"}}
    assert "message_stop" not in [e["type"] for e in events]
