"""Live Jupyter views of a streaming answer (lesson 2, 02_streaming).

    stream = kit.openai.chat.completions.create(..., stream=True)
    view = StreamView(openai_chat_events(stream), cancel=stream).start()
    view              # the widget: a Stop button, a status line, the answer growing as markdown
    view.result()     # wait for the end; the final text

How it is built, and why:

- **A background thread reads the stream.** A cell that loops over a stream in the foreground keeps the
  kernel busy, and a button's click is only handled once the cell ends — too late to stop anything. The
  cell that starts a view returns at once; the kernel stays free for clicks and for your next cell.
- **Throttled rendering.** Tokens can arrive hundreds of times a second. A second thread re-renders at most
  once every ``min_interval`` seconds (default 0.05 s), and once more at the end, so the browser gets a
  steady ~20 updates per second however fast the model is.
- **Safe rendering.** Model output is text, never HTML: it is rendered as CommonMark by markdown-it-py with
  raw HTML disabled, so a ``<script>`` or ``<img onerror=…>`` in an answer is shown, escaped, not run, and
  links with unsafe schemes (``javascript:``, ``data:``) are not made links. (Setting ``innerHTML`` to model
  output, as the source lesson did, lets an answer run code in your page.)
- **Stop really cancels.** Give the view what to cancel — the SDK stream or the HTTP response — and Stop
  shuts its connection down at once (:func:`hang_up`), so the server sees the client leave and stops
  generating, and billing. Merely closing the response from another thread is not enough: a reader already
  waiting for bytes (a provider can be silent for seconds before the first token) would only notice when the
  next bytes arrive. Then the reader ends and closes the source iterator too.

The view takes an iterable of text chunks (``str``) or of :mod:`llmkit.events` values; SDK streams are
turned into events by :mod:`llmkit.wire.sdk_events`.
"""

from __future__ import annotations

import html
import socket
import threading
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from .events import (
    Finish,
    ProviderError,
    RefusalDelta,
    TextDelta,
    ThinkingDelta,
    ToolCallComplete,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)

__all__ = ["StreamView", "hang_up", "render_markdown"]


@lru_cache(maxsize=1)
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    # "commonmark" with html=False: any HTML in the text is escaped; validateLink refuses unsafe schemes.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])


def render_markdown(text: str) -> str:
    """Model output (markdown) → HTML that is safe to show: no raw HTML, no script links (lesson 2)."""
    return _markdown().render(text)


def hang_up(target: Any) -> Callable[[], None]:
    """A function that ends ``target``'s HTTP request *now*, from any thread (lesson 2, 02_streaming).

    ``target``: an openai or anthropic stream (anything with a ``.response``), or an httpx / httpx2 streaming
    ``Response``. The returned function shuts the socket down — which wakes a reader blocked waiting for
    bytes, and tells the server the client has gone — and then closes the stream or response.
    """
    response = getattr(target, "response", target)

    def cancel() -> None:
        network = getattr(response, "extensions", {}).get("network_stream")
        sock = network.get_extra_info("socket") if network is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass
        close = getattr(target, "close", None) or getattr(response, "close", None)
        if callable(close):
            close()

    return cancel


class StreamView:
    """A live, throttled, cancellable view of one streaming answer (lesson 2, 02_streaming).

    ``source``: an iterable of ``str`` chunks or :mod:`llmkit.events` values. ``cancel``: what Stop cancels —
    the openai / anthropic stream or the httpx / httpx2 streaming response behind ``source`` (its connection
    is shut down at once, see :func:`hang_up`), or any function to call. Without it, Stop takes effect when
    the next chunk arrives (the reader then closes ``source`` if it can).

    Read back: ``text``, ``thinking``, ``tool_calls``, ``usage``, ``finish_reason``, ``errors`` (provider
    errors reported in the stream), ``error`` (an exception that ended it), ``stopped``, ``done``,
    ``ttft_s`` / ``elapsed_s`` (seconds from ``start()``), ``renders`` (how often the widget was redrawn).
    """

    def __init__(self, source: Iterable[Any], *, cancel: Any = None, title: str = "", min_interval: float = 0.05):
        import ipywidgets as widgets

        self._source = source
        self._cancel: Callable[[], Any] | None = (cancel if cancel is None or callable(cancel)
                                                  else hang_up(cancel))
        self.title = title
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._text: list[str] = []
        self._thinking: list[str] = []
        self._tools: dict[int, dict[str, Any]] = {}
        self.tool_calls: list[ToolCallComplete] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.errors: list[ProviderError] = []
        self.error: BaseException | None = None
        self.stopped = False
        self.renders = 0
        self.ttft_s: float | None = None
        self.elapsed_s: float | None = None
        self._t0: float | None = None
        self._dirty = False
        self._reading_done = threading.Event()
        self._done = threading.Event()
        self._stop_requested = threading.Event()
        self._threads: list[threading.Thread] = []
        self._handle: Any = None  # the display made by show(), updated with the final text

        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger",
                                          tooltip="Stop the answer: closes the connection to the model")
        self.stop_button.on_click(lambda _button: self.stop())
        self.status = widgets.HTML(value=self._status_html())
        self.body = widgets.HTML(value="")
        self.stop_button.add_class("llmkit-stream-stop")
        self.status.add_class("llmkit-stream-status")
        self.body.add_class("llmkit-stream-text")
        self.widget = widgets.VBox([widgets.HBox([self.stop_button, self.status]), self.body])
        self.widget.add_class("llmkit-stream-view")

    # --- reading back ------------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The answer text received so far (the whole answer once ``done``)."""
        with self._lock:
            return "".join(self._text)

    @property
    def thinking(self) -> str:
        with self._lock:
            return "".join(self._thinking)

    @property
    def done(self) -> bool:
        """True once the stream has ended (finished, stopped or failed) and the last render is sent."""
        return self._done.is_set()

    @property
    def html(self) -> str:
        """The HTML the widget shows for the answer (what the browser receives)."""
        return self.body.value

    def result(self, timeout: float | None = None) -> str:
        """Wait until the stream has ended; return the final text (a prefix of the answer if stopped).

        Re-raises the exception that ended the stream, unless it came from pressing Stop. A view shown with
        :meth:`show` gets its final text written into its display here, for saved notebooks.
        """
        if not self._threads:
            raise RuntimeError("this StreamView was never started; call view.start() first.")
        if not self._done.wait(timeout):
            raise TimeoutError(f"the stream did not end within {timeout} s; view.stop() cancels it.")
        self._publish_final()
        if self.error is not None:
            raise self.error
        return self.text

    def wait_for(self, chars: int = 1, timeout: float | None = None) -> bool:
        """Block until at least ``chars`` characters of text have arrived or the stream ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while sum(map(len, self._text)) < chars and not self._reading_done.is_set():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(left if left is not None else 0.1)
        return sum(map(len, self._text)) >= chars

    # --- running ------------------------------------------------------------------------------------------
    def start(self) -> StreamView:
        """Start reading the stream in the background; returns the view (display it as a cell's value)."""
        if self._threads:
            raise RuntimeError("this StreamView is already started; make a new one for a new stream.")
        self._t0 = time.perf_counter()
        self._dirty = True  # the first render says "waiting for the first token"
        self._threads = [threading.Thread(target=self._read, name="llmkit-stream-read", daemon=True),
                         threading.Thread(target=self._render_loop, name="llmkit-stream-render", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """What the Stop button does: cancel the request now, keep what has arrived."""
        if self._reading_done.is_set() or self._stop_requested.is_set():
            return
        self._stop_requested.set()
        self.stop_button.disabled = True
        self.stop_button.description = "Stopping…"
        if self._cancel is not None:
            try:
                self._cancel()  # the reader wakes up at once, with an error or at the end of the body
            except Exception:  # noqa: BLE001 - a failed close must not hide the stop itself
                pass

    def _read(self) -> None:
        iterator = iter(self._source)
        try:
            for item in iterator:
                if self._stop_requested.is_set():
                    break
                self._take(item)
        except BaseException as exc:  # noqa: BLE001 - reported through .error / result()
            if not self._stop_requested.is_set():
                self.error = exc
        finally:
            if self._stop_requested.is_set():
                self.stopped = True
                close = getattr(iterator, "close", None)
                if callable(close):
                    try:
                        close()  # a generator runs its cleanup; an SDK stream releases its connection
                    except Exception:  # noqa: BLE001
                        pass
            self.elapsed_s = time.perf_counter() - (self._t0 or 0.0)
            with self._changed:
                self._dirty = True
                self._changed.notify_all()
            self._reading_done.set()

    def _take(self, item: Any) -> None:
        with self._changed:
            if isinstance(item, str):
                item = TextDelta(item)
            match item:
                case TextDelta(text=t) | RefusalDelta(text=t):
                    if t and self.ttft_s is None:
                        self.ttft_s = time.perf_counter() - (self._t0 or 0.0)
                    self._text.append(t)
                case ThinkingDelta(text=t):
                    self._thinking.append(t)
                case ToolCallStart(index=i, name=name):
                    self._tools[i] = {"name": name, "arguments": ""}
                case ToolCallDelta(index=i, arguments_delta=d):
                    self._tools.setdefault(i, {"name": "?", "arguments": ""})["arguments"] += d
                case ToolCallComplete():
                    self._tools[item.index] = {"name": item.name, "arguments": item.arguments}
                    self.tool_calls.append(item)
                case Usage():
                    self.usage = item
                case Finish(reason=reason):
                    self.finish_reason = reason
                case ProviderError():
                    self.errors.append(item)
                case _:
                    raise TypeError(f"StreamView reads text chunks or llmkit.events values, not "
                                    f"{type(item).__name__}; turn an SDK stream into events with "
                                    "llmkit.wire.sdk_events (e.g. openai_chat_events(stream)).")
            self._dirty = True
            self._changed.notify_all()

    def _render_loop(self) -> None:
        while True:
            ended = self._reading_done.wait(self.min_interval)
            if ended or self._dirty:
                self._render(final=ended)
            if ended:
                break
        self._done.set()

    def _render(self, final: bool = False) -> None:
        with self._lock:
            self._dirty = False
            text, thinking = "".join(self._text), "".join(self._thinking)
            tools = [dict(t) for _, t in sorted(self._tools.items())]
        parts = []
        if thinking:
            parts.append('<details class="llmkit-thinking"><summary>thinking</summary>'
                         f"<pre>{html.escape(thinking)}</pre></details>")
        parts.append(f'<div class="llmkit-md">{render_markdown(text)}</div>')
        for tool in tools:
            parts.append(f'<div class="llmkit-tool-call">tool call <code>{html.escape(tool["name"])}</code> '
                         f'<code>{html.escape(tool["arguments"])}</code></div>')
        self.body.value = "\n".join(parts)
        self.status.value = self._status_html()
        if final:
            self.stop_button.disabled = True
            self.stop_button.description = "Stopped" if self.stopped else "Done"
        self.renders += 1

    def _status_html(self) -> str:
        title = f"<b>{html.escape(self.title)}</b> · " if self.title else ""
        chars = sum(map(len, self._text))
        if self._t0 is None:
            state = "not started"
        elif self._stop_requested.is_set() and not self._reading_done.is_set():
            state = "stopping…"
        elif not self._reading_done.is_set():
            state = (f"streaming… {chars} characters · {time.perf_counter() - self._t0:.1f} s" if chars
                     else "waiting for the first token…")
        elif self.stopped:
            state = f"stopped by you after {self.elapsed_s:.1f} s · {chars} characters kept"
        elif self.error is not None:
            state = f"failed: {html.escape(type(self.error).__name__)}: {html.escape(str(self.error)[:200])}"
        else:
            used = f" · {self.usage.output_tokens} output tokens" if self.usage else ""
            state = f"done ({html.escape(str(self.finish_reason))}) · {chars} characters{used} · " \
                    f"{self.elapsed_s:.1f} s"
        if self.errors:
            state += " · provider error: " + html.escape(self.errors[-1].message[:200])
        return f'<span class="llmkit-stream-state">{title}{state}</span>'

    # --- display ----------------------------------------------------------------------------------------
    def show(self) -> None:
        """Display the live widget in this cell (lesson 2, 02_streaming).

        Unlike leaving ``view`` as the cell's value, the display keeps an id: once the answer is complete,
        :meth:`result` updates it with the final text as HTML and plain text, so a saved notebook or a
        static page of the lesson (where the live widget cannot run) shows the answer, not a placeholder.
        """
        from IPython.display import display

        self._handle = display(self, display_id=True)

    def _publish_final(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        bundle = self.widget._repr_mimebundle_()
        bundle["text/plain"] = self.text
        bundle["text/html"] = f'<div class="llmkit-stream-view">{self.status.value}\n{self.body.value}</div>'
        handle.update(bundle, raw=True)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        # What a front end without the live widget shows (a saved notebook, GitHub, a terminal).
        name = f" {self.title!r}" if self.title else ""
        bundle["text/plain"] = f"<StreamView{name}: a live widget, shown when the cell runs in Jupyter; " \
                               "view.result() gives its text>"
        return bundle

    def __repr__(self) -> str:
        if not self._threads:
            state = "not started"
        elif not self.done:
            state = "streaming"
        else:
            state = "stopped" if self.stopped else ("failed" if self.error else "done")
        return f"<StreamView {state}, {len(self.text)} characters>"
