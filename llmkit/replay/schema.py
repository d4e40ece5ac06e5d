"""The cassette file format as a schema: every malformed field is named with its position (lesson 0).

:func:`validate_cassette` checks a decoded cassette document against Pydantic models and raises
:class:`~llmkit.errors.CassetteError` naming the first bad field, e.g.
``interactions[3].response.status: Input should be a valid integer``. ``Cassette.load``, the replay
server (``llmkit serve``) and ``llmkit cassette check`` all validate through it, so a file that passes
the check also serves. Pydantic is imported on first use (``import llmkit`` stays light).
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import CassetteError
from .canonical import MAX_JSON_DEPTH, nested_deeper_than

FORMAT_VERSION = 1
PROVENANCE_KINDS = ("scripted", "recorded")
FIX_HINT = "fix it by hand, restore it from git, or re-record it (LLMKIT_MODE=record)"

_models: dict[str, Any] = {}
_MODEL_NAME = re.compile(r" or instance of \w+Model")
_PATTERN_MESSAGES = {
    "method": "should be an HTTP method (letters only)",
    "path": "should be a URL path starting with / (no spaces, control characters, ? or #)",
    "query": "should be a query string without spaces or control characters",
    "headers": "should be an HTTP header (a token as name; no line breaks or NUL in the value)",
}


def _build_models() -> dict[str, Any]:
    """Define the models on first use (pydantic is heavy to import)."""
    from typing import Annotated, Literal

    from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

    from .. import providers

    strict = ConfigDict(strict=True, extra="forbid")
    # What an HTTP server may send: a token as the name, no line breaks or NUL in the value.
    HeaderName = Annotated[str, StringConstraints(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
    HeaderValue = Annotated[str, StringConstraints(pattern=r"^[^\r\n\x00]*$")]

    class FrameModel(BaseModel):
        model_config = strict
        t_ms: float = Field(ge=0, allow_inf_nan=False)
        raw: str

    class RequestModel(BaseModel):
        model_config = strict
        provider: str
        method: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z]+$")
        path: str = Field(min_length=1, pattern=r"^/[^\s\x00-\x1f?#]*$")
        query: str = Field(default="", pattern=r"^[^\s\x00-\x1f#]*$")
        body: Any = None

        @field_validator("provider")
        @classmethod
        def registered(cls, value: str) -> str:
            if value not in providers.names():
                raise ValueError(f"unknown provider {value!r}; use one of {', '.join(providers.names())}")
            return value

    class ResponseModel(BaseModel):
        model_config = strict
        status: int = Field(ge=200, le=599)
        headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
        body: Any = None
        body_text: str | None = None
        stream: list[FrameModel] | None = None
        t_ms: float = Field(default=0.0, ge=0, allow_inf_nan=False)
        headers_ms: float = Field(default=0.0, ge=0, allow_inf_nan=False)

        @model_validator(mode="after")
        def one_body(self) -> ResponseModel:
            given = [k for k in ("body", "body_text", "stream") if getattr(self, k) is not None]
            if len(given) > 1:
                raise ValueError(f"a response holds one of body, body_text or stream, not {' and '.join(given)}")
            return self

    class InteractionModel(BaseModel):
        model_config = strict
        request: RequestModel
        response: ResponseModel

    class ProvenanceModel(BaseModel):
        model_config = ConfigDict(strict=True, extra="allow")
        kind: Literal["scripted", "recorded"]

    class CassetteModel(BaseModel):
        model_config = ConfigDict(strict=True, extra="allow")
        llmkit_cassette: Literal[1]
        name: str | None = None
        provenance: ProvenanceModel
        interactions: list[InteractionModel] = Field(default_factory=list)

    return {"cassette": CassetteModel}


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (the name)"
        else:
            out += f".{part}" if out else str(part)
    return out or "<file>"


def _unencodable(data: Any) -> str | None:
    """Where a string that cannot be sent as UTF-8 sits (a lone ``\\ud800`` escape), or None."""
    import json

    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
        return None
    except UnicodeEncodeError:
        pass
    stack: list[tuple[Any, tuple]] = [(data, ())]
    while stack:
        value, loc = stack.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in items:
            for text in (key, child):
                if isinstance(text, str):
                    try:
                        text.encode("utf-8")
                    except UnicodeEncodeError:
                        return _location((*loc, key))
            stack.append((child, (*loc, key)))
    return "<file>"


def validate_cassette(data: Any, *, source: str = "<dict>") -> Any:
    """Validate a decoded cassette document (lesson 0, 00_setup_and_replay); return the validated model.

    Raises :class:`~llmkit.errors.CassetteError` whose one-line message names the source, the first
    bad field with its position and what to do.
    """
    if not isinstance(data, dict) or data.get("llmkit_cassette") != FORMAT_VERSION:
        raise CassetteError(f"{source} is not an llmkit cassette (expected a JSON object with "
                            f"\"llmkit_cassette\": {FORMAT_VERSION}); check the file name.")
    if nested_deeper_than(data, MAX_JSON_DEPTH + 8):
        raise CassetteError(f"{source}: JSON is nested deeper than {MAX_JSON_DEPTH} levels inside a body; "
                            f"{FIX_HINT}.")
    bad_text = _unencodable(data)
    if bad_text is not None:
        raise CassetteError(f"{source} is malformed: {bad_text}: text that is not valid Unicode (a lone "
                            f"surrogate escape); {FIX_HINT}.")
    if not _models:
        _models.update(_build_models())
    from pydantic import ValidationError

    try:
        return _models["cassette"].model_validate(data)
    except ValidationError as e:
        errors = e.errors(include_url=False, include_input=False)
        first = errors[0]
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        msg = _MODEL_NAME.sub("", first["msg"])
        if first["type"] == "string_pattern_mismatch":
            field = next((p for p in first["loc"] if p in _PATTERN_MESSAGES), None)
            msg = _PATTERN_MESSAGES.get(field, msg) if isinstance(field, str) else msg
        raise CassetteError(f"{source} is malformed: {_location(first['loc'])}: {msg}{more}; "
                            f"{FIX_HINT}.") from None
