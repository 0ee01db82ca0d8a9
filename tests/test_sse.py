"""sse.EventSplitter, last_boundary and encode, without HTTP."""

from __future__ import annotations

import orjson
import pytest

from llm_wrapper.sse import DONE, EventSplitter, encode, last_boundary

STREAM = b'data: {"a": 1}\n\n: keep-alive\n\nevent: ping\ndata: {"b": 2}\n\ndata: [DONE]\n\n'


def split_all(pieces: list[bytes]) -> list[tuple[bytes, bytes]]:
    splitter = EventSplitter()
    events = [e for piece in pieces for e in splitter.feed(piece)]
    events += list(splitter.flush())
    return [(e.data, e.name) for e in events]


EXPECTED = [(b'{"a": 1}', b""), (b'{"b": 2}', b"ping"), (b"[DONE]", b"")]


def test_whole_stream_in_one_piece() -> None:
    assert split_all([STREAM]) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16])
def test_events_split_anywhere_come_out_whole(size: int) -> None:
    pieces = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert split_all(pieces) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 5])
def test_crlf_line_ends_split_between_cr_and_lf(size: int) -> None:
    crlf = b'data: {"a": 1}\r\ndata: {"c": 3}\r\n\r\ndata: [DONE]\r\n\r\n'
    pieces = [crlf[i : i + size] for i in range(0, len(crlf), size)]
    assert split_all(pieces) == [(b'{"a": 1}\n{"c": 3}', b""), (b"[DONE]", b"")]


def test_cr_only_line_ends() -> None:
    assert split_all([b"data: x\r\r", b"data: y\r\r"]) == [(b"x", b""), (b"y", b"")]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert split_all([b"data: one\ndata: two\ndata:three\n\n"]) == [(b"one\ntwo\nthree", b"")]


def test_flush_returns_a_last_event_without_its_blank_line() -> None:
    splitter = EventSplitter()
    assert [e.data for e in splitter.feed(b'data: {"x": 1}\n\ndata: {"y": 2}')] == [b'{"x": 1}']
    assert [e.data for e in splitter.flush()] == [b'{"y": 2}']
    assert list(splitter.flush()) == []


def test_comment_only_blocks_are_not_events() -> None:
    assert split_all([b": ping\n\n: pong\n\n"]) == []


@pytest.mark.parametrize(
    ("data", "end"),
    [
        (b"", 0),
        (b"data: x", 0),
        (b"data: x\n\n", 9),
        (b"data: x\n\ndata: y", 9),
        (b"data: x\n\ndata: y\n\n", 18),
        (b"data: x\r\n\r\ndata: y", 11),
        (b"data: x\r\rdata", 9),
        (b"data: x\r\n\r", 0),
    ],
)
def test_last_boundary(data: bytes, end: int) -> None:
    assert last_boundary(data) == end


def test_encode_writes_one_data_event() -> None:
    out = encode({"a": [1, "é"]})
    assert out.startswith(b"data: ") and out.endswith(b"\n\n") and out.count(b"\n") == 2
    assert orjson.loads(out[6:]) == {"a": [1, "é"]}
    assert DONE == b"data: [DONE]\n\n"
