"""OpenTelemetry traces of LLM calls, in the GenAI semantic conventions (lesson 12, ``12_observability_and_evals``).

What traces what, with the pinned packages (each fact is checked in tests/test_tracing.py):

- **OpenAI** Chat Completions and embeddings: ``opentelemetry-instrumentation-openai-v2``, OpenTelemetry's own
  contrib package. It wraps ``chat.completions.create`` only: not the Responses API, and not
  ``chat.completions.parse`` (structured output), so :meth:`Tracing.llm_span` writes those spans by hand.
- **Anthropic**: the SDK traces itself (anthropic 2.14's ``open_telemetry`` client option); no package is needed,
  and :meth:`Tracing.anthropic` hands a client this tracer provider.
- **Gemini**: ``opentelemetry-instrumentation-google-genai`` (contrib). It declares ``google-genai<3`` and instruments
  nothing on 3.x unless told to skip that check; with the check skipped it traces google-genai 3.6.1 correctly.

Spans go to an in-memory exporter (so a lesson can print them) and, given an endpoint, over OTLP/HTTP to a trace
UI such as Phoenix (:mod:`llmkit.phoenix`). In production you would keep only the OTLP exporter, usually behind
an OpenTelemetry Collector.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Span, Tracer

__all__ = ["Tracing", "instrumented", "start_tracing"]

# The attributes a span table shows, in the order it shows them (OpenTelemetry GenAI semantic conventions).
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
FINISH_REASONS = "gen_ai.response.finish_reasons"
ERROR_TYPE = "error.type"

_active: Tracing | None = None


class _ExceptionClassAsErrorType(logging.Filter):
    """Drops one known warning. openai-v2 2.4b0 passes the exception *class* as ``error.type`` (the conventions want
    its name); OpenTelemetry stores the class's ``str`` instead, ``<class 'openai.RateLimitError'>``, and logs a
    warning about the type on every failed call. The value stays as stored; only the warning is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.getMessage().startswith("Invalid type `<class 'type'>` for attribute value"))


_FILTER = _ExceptionClassAsErrorType()


class Tracing:
    """One tracer provider with its exporters and the instrumentations it switched on (lesson 12)."""

    def __init__(self, provider: TracerProvider, memory: InMemorySpanExporter, endpoint: str | None) -> None:
        self.provider = provider
        self.memory = memory
        self.endpoint = endpoint
        self.tracer: Tracer = provider.get_tracer("llmkit")
        self._instrumentors: list[Any] = []

    # --- clients -----------------------------------------------------------------------------------------------
    def anthropic(self, client: Any) -> Any:
        """A copy of an Anthropic client whose own spans go to this provider (the SDK's ``open_telemetry`` option)."""
        return client.with_options(open_telemetry={"tracer_provider": self.provider})

    # --- hand-written spans, where no instrumentation exists ----------------------------------------------------
    @contextmanager
    def llm_span(self, provider: str, model: str, operation: str = "chat") -> Iterator[Span]:
        """A GenAI client span around one model call that no package instruments (the OpenAI Responses API and
        ``chat.completions.parse``).

        Record the answer with :meth:`record_response`. An exception marks the span failed, with ``error.type``.
        """
        from opentelemetry.trace import SpanKind

        name = f"{operation} {model}"
        attributes = {OPERATION: operation, PROVIDER: provider, REQUEST_MODEL: model}
        with self.tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes) as span:
            try:
                yield span
            except Exception as exc:
                span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
                raise

    @staticmethod
    def record_response(span: Span, response: Any) -> None:
        """Set the response attributes of :meth:`llm_span` from an OpenAI response: the Responses API's, or a
        Chat Completion from ``chat.completions.parse`` (which openai-v2 does not wrap either)."""
        usage = response.usage
        if hasattr(usage, "prompt_tokens"):  # a Chat Completion
            tokens = (usage.prompt_tokens, usage.completion_tokens)
            finish = [choice.finish_reason for choice in response.choices]
        else:
            details = getattr(response, "incomplete_details", None)
            tokens = (usage.input_tokens, usage.output_tokens)
            finish = [getattr(details, "reason", None) or response.status]
        span.set_attributes({"gen_ai.response.id": response.id, "gen_ai.response.model": response.model,
                             INPUT_TOKENS: tokens[0], OUTPUT_TOKENS: tokens[1], FINISH_REASONS: finish})

    @contextmanager
    def agent_span(self, name: str) -> Iterator[Span]:
        """The parent span of one agent run: every model call and tool round inside it becomes its child."""
        with self.tracer.start_as_current_span(f"invoke_agent {name}", attributes={
                OPERATION: "invoke_agent", "gen_ai.agent.name": name}) as span:
            yield span

    @contextmanager
    def tool_span(self, name: str, call_id: str) -> Iterator[Span]:
        """One tool round: the function your code runs for a model's tool call."""
        with self.tracer.start_as_current_span(f"execute_tool {name}", attributes={
                OPERATION: "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.call.id": call_id,
                "gen_ai.tool.type": "function"}) as span:
            yield span

    # --- reading spans back ------------------------------------------------------------------------------------
    def spans(self) -> list[ReadableSpan]:
        """Every finished span so far, oldest first."""
        self.provider.force_flush()
        return sorted(self.memory.get_finished_spans(), key=lambda s: s.start_time or 0)

    def table(self, spans: list[ReadableSpan] | None = None) -> pd.DataFrame:
        """One row per span: its name, parent, model, tokens, finish reasons, error and duration in ms."""
        import pandas as pd

        spans = self.spans() if spans is None else spans
        names = {s.context.span_id: s.name for s in spans}
        rows = []
        for s in spans:
            a = s.attributes or {}
            finish = a.get(FINISH_REASONS)
            rows.append({"span": s.name, "parent": names.get(s.parent.span_id) if s.parent else None,
                         "provider": a.get(PROVIDER), "input_tokens": a.get(INPUT_TOKENS),
                         "output_tokens": a.get(OUTPUT_TOKENS), "finish": ",".join(finish) if finish else None,
                         "error": a.get(ERROR_TYPE), "ms": ((s.end_time or 0) - (s.start_time or 0)) / 1e6})
        return pd.DataFrame(rows, columns=["span", "parent", "provider", "input_tokens", "output_tokens", "finish",
                                           "error", "ms"])

    def tree(self, trace_id: int | None = None) -> str:
        """The spans of one trace (the latest by default) as an indented tree, children in start order."""
        spans = self.spans()
        if not spans:
            return "(no spans)"
        trace_id = spans[-1].context.trace_id if trace_id is None else trace_id
        mine = [s for s in spans if s.context.trace_id == trace_id]
        ids = {s.context.span_id for s in mine}
        children: dict[int | None, list[ReadableSpan]] = {}
        for s in mine:
            parent = s.parent.span_id if s.parent and s.parent.span_id in ids else None
            children.setdefault(parent, []).append(s)
        lines: list[str] = []

        def walk(parent: int | None, depth: int) -> None:
            for s in children.get(parent, []):
                a = s.attributes or {}
                extra = [f"{a[k]} {label}" for k, label in ((INPUT_TOKENS, "in"), (OUTPUT_TOKENS, "out")) if k in a]
                if ERROR_TYPE in a:
                    extra.append(f"error {a[ERROR_TYPE]}")
                lines.append("  " * depth + s.name + (f"  ({', '.join(extra)})" if extra else ""))
                walk(s.context.span_id, depth + 1)

        walk(None, 0)
        return "\n".join(lines)

    def clear(self) -> None:
        """Forget the spans held in memory (the OTLP exporter has sent them already)."""
        self.provider.force_flush()
        self.memory.clear()

    def shutdown(self) -> None:
        """Switch the instrumentations off, send what is buffered and stop the exporters. Idempotent."""
        global _active
        for instrumentor in self._instrumentors:
            instrumentor.uninstrument()
        self._instrumentors.clear()
        self.provider.shutdown()
        if _active is self:
            _active = None


def instrumented(owner: type, method: str) -> bool:
    """Whether an instrumentation has wrapped ``owner.method`` (they wrap with wrapt; the SDKs' own decorators set
    ``__wrapped__`` too, so that attribute proves nothing)."""
    import wrapt

    return isinstance(owner.__dict__.get(method), wrapt.FunctionWrapper)


def start_tracing(service: str, *, otlp_endpoint: str | None = None) -> Tracing:
    """Trace every OpenAI and Gemini call of this process, and the Anthropic clients you pass to
    :meth:`Tracing.anthropic`, as the service ``service``; spans also go over OTLP/HTTP to ``otlp_endpoint``
    (for example ``Phoenix.otlp_traces_url``) when given. Starting again replaces the previous tracing.
    """
    global _active
    from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    if _active is not None:
        _active.shutdown()
    logging.getLogger("opentelemetry.attributes").addFilter(_FILTER)  # adding it twice keeps one
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    tracing = Tracing(provider, memory, otlp_endpoint)
    openai_instrumentor, gemini_instrumentor = OpenAIInstrumentor(), GoogleGenAiSdkInstrumentor()
    openai_instrumentor.instrument(tracer_provider=provider)
    # google-genai 3.x is outside the range the package declares; it traces it correctly (tests/test_tracing.py)
    gemini_instrumentor.instrument(tracer_provider=provider, skip_dep_check=True)
    tracing._instrumentors += [openai_instrumentor, gemini_instrumentor]
    _active = tracing
    return tracing
