"""Incremental decoders for streamed bodies: Server-Sent Events and JSON arrays.

Introduced in lesson 2 (02_streaming), "parsing SSE by hand".

Network chunks split a stream anywhere - inside a CRLF, inside a multi-byte
UTF-8 character, inside a JSON string - so decoding happens in layers, each
keeping only the unfinished tail of its input::

    bytes ──Utf8Decoder──▶ str ──LineDecoder──▶ lines ──EventDecoder──▶ ServerSentEvent
                                        SSEDecoder = all three, fed bytes

    bytes ──JSONArrayDecoder──▶ one object per array element   (legacy Gemini stream)

The SSE rules follow the WHATWG spec: lines end in ``\\r\\n``, ``\\n`` or ``\\r``;
``:`` starts a comment; ``data:`` lines (with or without the space) are joined
with ``\\n``; a blank line dispatches the event; an event without data is
dropped. One leniency: at end of stream an event that lacks its final blank
line is still dispatched (the spec discards it), so a truncated stream loses
nothing it already carried.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EventDecoder",
    "JSONArrayDecoder",
    "LineDecoder",
    "SSEDecoder",
    "ServerSentEvent",
    "Utf8Decoder",
]

_NEWLINE = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched SSE event."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        """The data parsed as JSON."""
        return json.loads(self.data)


class Utf8Decoder:
    """bytes → str, holding back an incomplete multi-byte character until its rest arrives."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: bytes) -> str:
        return self._decoder.decode(chunk)

    def close(self) -> str:
        return self._decoder.decode(b"", final=True)


class LineDecoder:
    """str → complete lines (without their terminator).

    A chunk ending in ``\\r`` completes its line at once; a ``\\n`` at the start
    of the next chunk is then the second half of that CRLF and is skipped.
    """

    def __init__(self) -> None:
        self._tail: list[str] = []
        self._after_cr = False

    def feed(self, text: str) -> list[str]:
        if self._after_cr and text:
            self._after_cr = False
            if text[0] == "\n":
                text = text[1:]
        if not text:
            return []
        parts = _NEWLINE.split(text)
        self._after_cr = text[-1] == "\r"
        lines = []
        for part in parts[:-1]:
            self._tail.append(part)
            lines.append("".join(self._tail))
            self._tail = []
        if parts[-1]:
            self._tail.append(parts[-1])
        return lines

    def close(self) -> list[str]:
        """The unterminated last line, if any."""
        tail, self._tail = "".join(self._tail), []
        return [tail] if tail else []


class EventDecoder:
    """lines → ``ServerSentEvent`` values, per the SSE field rules."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._retry: int | None = None
        self.last_event_id: str | None = None

    def feed_line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._retry = int(value)
        return None

    def close(self) -> ServerSentEvent | None:
        return self._dispatch()

    def _dispatch(self) -> ServerSentEvent | None:
        event, data, retry = self._event, self._data, self._retry
        self._event, self._data, self._retry = "", [], None
        if not data:
            return None
        return ServerSentEvent(
            event=event or "message", data="\n".join(data), id=self.last_event_id, retry=retry
        )


class SSEDecoder:
    """bytes → ``ServerSentEvent`` values: the three layers above, fed arbitrary chunks."""

    def __init__(self) -> None:
        self._utf8 = Utf8Decoder()
        self._lines = LineDecoder()
        self._events = EventDecoder()
        self._started = False

    @property
    def last_event_id(self) -> str | None:
        return self._events.last_event_id

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        return self._feed_text(self._utf8.feed(chunk))

    def close(self) -> list[ServerSentEvent]:
        events = self._feed_text(self._utf8.close())
        for line in self._lines.close():
            events += self._feed_lines([line])
        last = self._events.close()
        return events + [last] if last else events

    def _feed_text(self, text: str) -> list[ServerSentEvent]:
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")  # a leading BOM is not part of the first field
        return self._feed_lines(self._lines.feed(text))

    def _feed_lines(self, lines: list[str]) -> list[ServerSentEvent]:
        out = []
        for line in lines:
            event = self._events.feed_line(line)
            if event is not None:
                out.append(event)
        return out


_IN_STRING = re.compile(r'["\\]')
_OUTSIDE = re.compile(r'["{}\[\]]')


class JSONArrayDecoder:
    """bytes of one JSON array → its elements, each as soon as it is complete.

    The legacy Gemini stream (``streamGenerateContent`` without ``alt=sse``) is a
    single JSON array, ``[{...},\\r\\n{...}]``, that arrives in pieces. Elements
    must be objects or arrays. A body that is a lone object (an error) is
    yielded as one element.
    """

    def __init__(self) -> None:
        self._utf8 = Utf8Decoder()
        self._buf = ""  # text not yet consumed
        self._pos = 0  # scan position within _buf
        self._start = -1  # start of the current element in _buf, -1 between elements
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._opened = False  # the outer "[" was seen

    def feed(self, chunk: bytes) -> list[Any]:
        self._buf += self._utf8.feed(chunk)
        return self._scan()

    def close(self) -> list[Any]:
        self._buf += self._utf8.close()
        items = self._scan()
        if self._start >= 0 or (self._buf[self._pos :].strip(" \t\r\n,]")):
            raise ValueError("stream ended inside a JSON value")
        return items

    def _scan(self) -> list[Any]:
        items: list[Any] = []
        buf, pos = self._buf, self._pos
        while pos < len(buf):
            if self._escaped:  # the character after a backslash in a string
                self._escaped = False
                pos += 1
                continue
            if self._start < 0:
                ch = buf[pos]
                if ch in " \t\r\n,":
                    pos += 1
                elif ch == "[" and not self._opened:
                    self._opened = True
                    pos += 1
                elif ch == "]" and self._opened:
                    pos += 1
                elif ch in "{[":
                    self._start = pos
                    self._depth = 1
                    pos += 1
                else:
                    raise ValueError(f"unexpected {ch!r} between JSON array elements")
                continue
            # inside an element (strings are only ever inside one): jump to the next character that matters
            m = (_IN_STRING if self._in_string else _OUTSIDE).search(buf, pos)
            if m is None:
                pos = len(buf)
                break
            pos = m.end()
            ch = m.group()
            if self._in_string:
                if ch == "\\":
                    self._escaped = True
                else:
                    self._in_string = False
            elif ch == '"':
                self._in_string = True
            elif ch in "{[":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 0:
                    items.append(json.loads(buf[self._start : pos]))
                    self._start = -1
        # drop what is consumed; keep the unfinished element
        keep = self._start if self._start >= 0 else pos
        self._buf = buf[keep:]
        self._pos = pos - keep
        if self._start >= 0:
            self._start = 0
        return items
