"""The incremental SSE and JSON-array decoders, fed arbitrary chunks."""

from __future__ import annotations

import importlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmkit.wire
from llmkit.wire._sse import (
    EventDecoder,
    JSONArrayDecoder,
    LineDecoder,
    ServerSentEvent,
    SSEDecoder,
    Utf8Decoder,
)

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def decode_sse(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


# -- layers ------------------------------------------------------------------------


def test_utf8_decoder_holds_back_a_split_character():
    data = "é€😀".encode()
    decoder = Utf8Decoder()
    out = "".join(decoder.feed(data[i : i + 1]) for i in range(len(data)))
    assert out + decoder.close() == "é€😀"
    assert Utf8Decoder().feed(data[:1]) == ""  # half of "é" is not yet text


@pytest.mark.parametrize(
    "chunks",
    [
        ["a\r\nb\r\n"],
        ["a\r", "\nb\r\n"],  # CRLF split between chunks
        ["a\r", "\n", "b\r", "\n"],
        ["a", "\r\n", "b", "\r\n"],
    ],
)
def test_line_decoder_crlf_split_anywhere_is_one_terminator(chunks):
    decoder = LineDecoder()
    lines = [line for chunk in chunks for line in decoder.feed(chunk)]
    assert lines == ["a", "b"]


def test_line_decoder_lone_cr_and_lf_and_blank_lines():
    decoder = LineDecoder()
    assert decoder.feed("a\rb\nc\r\rd") == ["a", "b", "c", ""]
    assert decoder.feed("\n") == ["d"]
    assert decoder.feed("\n") == [""]  # a new LF after a completed line is a blank line


def test_line_decoder_cr_then_lf_in_later_chunk_after_empty_chunk():
    decoder = LineDecoder()
    assert decoder.feed("a\r") == ["a"]
    assert decoder.feed("") == []
    assert decoder.feed("\nb\n") == ["b"]


def test_line_decoder_only_cr_and_lf_end_lines():
    # str.splitlines would also split on these; inside JSON they are data.
    text = "x\u2028y\x0bz\x1c\x85w"
    decoder = LineDecoder()
    assert decoder.feed(text + "\n") == [text]


def test_line_decoder_close_returns_unterminated_tail():
    decoder = LineDecoder()
    assert decoder.feed("one\ntw") == ["one"]
    assert decoder.feed("o") == []
    assert decoder.close() == ["two"]
    assert decoder.close() == []


def feed_lines(lines: list[str]) -> list[ServerSentEvent]:
    decoder = EventDecoder()
    out = [decoder.feed_line(line) for line in lines]
    last = decoder.close()
    return [e for e in [*out, last] if e is not None]


def test_event_fields_and_defaults():
    events = feed_lines(["event: ping", "data: {}", "id: 7", "retry: 1500", ""])
    assert events == [ServerSentEvent(event="ping", data="{}", id="7", retry=1500)]
    assert feed_lines(["data: x", ""]) == [ServerSentEvent(event="message", data="x")]


def test_event_data_with_or_without_space_and_only_one_space_stripped():
    events = feed_lines(["data:a", "", "data: b", "", "data:  c", "", "data", ""])
    # a bare "data" line is a field with an empty value: the event is dispatched, data ""
    assert [e.data for e in events] == ["a", "b", " c", ""]


def test_event_multiline_data_joined_with_newline():
    assert feed_lines(["data: a", "data:", "data: b", ""])[0].data == "a\n\nb"


def test_comments_unknown_fields_and_eventless_blocks_ignored():
    lines = [": keep-alive", "foo: bar", "", "event: lonely", "", "data: real", ""]
    events = feed_lines(lines)
    # "event: lonely" without data dispatches nothing and does not leak into the next event
    assert events == [ServerSentEvent(event="message", data="real")]


def test_id_persists_and_nul_id_and_bad_retry_ignored():
    lines = ["id: 1", "data: a", "", "data: b", "", "id: x\0y", "retry: 1s", "data: c", ""]
    events = feed_lines(lines)
    assert [(e.data, e.id, e.retry) for e in events] == [
        ("a", "1", None),
        ("b", "1", None),
        ("c", "1", None),
    ]


def test_sse_decoder_strips_leading_bom_once():
    events = decode_sse([b"\xef\xbb", b"\xbfdata: 1\n\ndata: \xef\xbb\xbf2\n\n"])
    assert [e.data for e in events] == ["1", "\ufeff2"]


def test_sse_decoder_dispatches_unterminated_last_event_at_close():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b") == [ServerSentEvent(data="a")]
    assert decoder.close() == [ServerSentEvent(data="b")]


# -- SSE property: any events, any newline style, any chunking -------------------------

field_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\0"),
    max_size=12,
)
sse_events = st.lists(
    st.tuples(
        st.one_of(st.none(), field_text.filter(lambda s: s != "")),
        st.lists(field_text, min_size=1, max_size=3),
        st.one_of(st.none(), st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True)),
    ),
    max_size=6,
)


@SETTINGS
@given(
    events=sse_events,
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    space=st.booleans(),
    comments=st.booleans(),
    cuts=st.lists(st.integers(min_value=0), max_size=30),
)
def test_sse_round_trip_any_chunking(events, newline, space, comments, cuts):
    sep = ": " if space else ":"
    text = ""
    expected = []
    last_id = None
    for name, data_lines, id_ in events:
        if comments:
            text += f": comment{newline}"
        if name is not None:
            text += f"event{sep}{name}{newline}"
        for line in data_lines:
            text += f"data{sep}{line}{newline}"
        if id_ is not None:
            text += f"id{sep}{id_}{newline}"
            last_id = id_
        text += newline
        # with the optional space, a value's own leading space survives; without it, it does
        # not (the decoder strips exactly one) - so build the expectation the same way
        def value(v: str) -> str:
            return v if space else v.removeprefix(" ")

        expected.append(
            ServerSentEvent(
                event=value(name) if name is not None and value(name) else "message",
                data="\n".join(value(d) for d in data_lines),
                id=last_id if id_ is None else id_,
            )
        )
    data = text.encode()
    assert decode_sse(split_at(data, cuts)) == expected
    assert decode_sse([data[i : i + 1] for i in range(len(data))]) == expected


# -- JSON array stream -------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8),
    st.sampled_from(['"', "\\", "[", "]", "{", "}", '\\"', "é", "😀"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)
elements = st.lists(
    st.one_of(
        st.dictionaries(st.text(max_size=5), json_values, max_size=4),
        st.lists(json_values, max_size=3),
    ),
    max_size=5,
)


def decode_array(chunks: list[bytes]) -> list:
    decoder = JSONArrayDecoder()
    out = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.close()


@SETTINGS
@given(
    items=elements,
    indent=st.sampled_from([None, 2]),
    ascii_=st.booleans(),
    sep=st.sampled_from([",", ",\r\n", "\n,\n", " , "]),
    cuts=st.lists(st.integers(min_value=0), max_size=30),
)
def test_json_array_round_trip_any_chunking(items, indent, ascii_, sep, cuts):
    body = "[" + sep.join(json.dumps(i, indent=indent, ensure_ascii=ascii_) for i in items) + "]"
    data = body.encode()
    assert decode_array(split_at(data, cuts)) == items
    assert decode_array([data[i : i + 1] for i in range(len(data))]) == items


def test_json_array_yields_each_element_as_soon_as_it_is_complete():
    decoder = JSONArrayDecoder()
    assert decoder.feed(b'[{"a": "}"') == []
    assert decoder.feed(b"}") == [{"a": "}"}]
    assert decoder.feed(b',\r\n{"b": [1, {"c": "\\""}]}') == [{"b": [1, {"c": '"'}]}]
    assert decoder.feed(b"]") == []
    assert decoder.close() == []


def test_json_array_lone_object_body_is_one_element():
    assert decode_array([b'{"error": {"code": 400}}\n']) == [{"error": {"code": 400}}]


def test_json_array_truncated_raises_at_close():
    decoder = JSONArrayDecoder()
    decoder.feed(b'[{"a": 1}, {"b": ')
    with pytest.raises(ValueError):
        decoder.close()


def test_json_array_rejects_garbage_between_elements():
    with pytest.raises(ValueError):
        JSONArrayDecoder().feed(b"[1]")


# -- public surface ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module",
    [
        "llmkit.wire",
        "llmkit.wire.openai",
        "llmkit.wire.anthropic",
        "llmkit.wire.gemini",
        "llmkit.wire.sdk_events",
        "llmkit.events",
    ],
)
def test_all_lists_only_existing_public_names(module):
    mod = importlib.import_module(module)
    assert len(set(mod.__all__)) == len(mod.__all__)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} listed in __all__ but missing"


def test_wire_package_exports_what_lessons_use():
    for name in ("openai", "anthropic", "gemini", "SSEDecoder", "WireRequest", "stream_parser"):
        assert name in llmkit.wire.__all__
