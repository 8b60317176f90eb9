"""The SSE decoder must give the same events however the bytes are split."""

from __future__ import annotations

from mlxgw.wires.sse import SSEDecoder, SSEEvent, frame

SAMPLE = (
    b": keep-alive comment\r\n"
    b"event: message_start\r\n"
    b'data: {"type":"message_start","text":"h\xc3\xa9llo"}\r\n'
    b"\r\n"
    b"data: line one\n"
    b"data: line two\n"
    b"id: 7\n"
    b"retry: 100\n"
    b"\n"
    b"event: ping\n"
    b"data:no-space\n"
    b"\n"
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)
EXPECTED = [
    SSEEvent("message_start", '{"type":"message_start","text":"h\u00e9llo"}'),
    SSEEvent(None, "line one\nline two"),
    SSEEvent("ping", "no-space"),
    SSEEvent(None, "[DONE]"),
]


def decode(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.flush()


def test_every_two_way_split_gives_the_same_events():
    for cut in range(len(SAMPLE) + 1):
        assert decode([SAMPLE[:cut], SAMPLE[cut:]]) == EXPECTED, cut


def test_every_three_way_split_gives_the_same_events():
    for a in range(0, len(SAMPLE), 3):
        for b in range(a, len(SAMPLE) + 1, 2):
            assert decode([SAMPLE[:a], SAMPLE[a:b], SAMPLE[b:]]) == EXPECTED, (a, b)


def test_byte_by_byte():
    assert decode([bytes([b]) for b in SAMPLE]) == EXPECTED


def test_events_come_out_as_soon_as_their_blank_line_arrives():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\n") == [SSEEvent(None, "a")]
    # A lone trailing \r may be half of \r\n: the line waits for the next byte.
    assert decoder.feed(b"data: b\r\n\r") == []
    assert decoder.feed(b"\n") == [SSEEvent(None, "b")]


def test_bare_cr_line_endings_and_a_missing_final_blank_line():
    assert decode([b"event: x\rdata: 1\r\rdata: 2"]) == [SSEEvent("x", "1"), SSEEvent(None, "2")]


def test_frame_round_trips_through_the_decoder():
    payload = frame("first\nsecond", "message_delta") + frame(b'{"a":1}') + frame("[DONE]")
    assert payload.startswith(b"event: message_delta\ndata: first\ndata: second\n\n")
    assert decode([payload]) == [
        SSEEvent("message_delta", "first\nsecond"),
        SSEEvent(None, '{"a":1}'),
        SSEEvent(None, "[DONE]"),
    ]


def test_raw_bytes_reproduce_the_stream_and_keep_alives_are_kept():
    stream = b": keep-alive\n\n" + SAMPLE
    events = decode([stream[:7], stream[7:40], stream[40:]])
    assert events[0] == SSEEvent(None, "") and events[0].raw == b": keep-alive\n\n"
    assert b"".join(e.raw for e in events) == stream.replace(b"\n\n\ndata: [DONE]", b"\n\ndata: [DONE]")
    assert [e for e in events if e.data] == EXPECTED
