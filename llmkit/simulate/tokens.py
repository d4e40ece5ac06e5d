"""How many input tokens the simulator bills for a request (lesson 5, 05_multimodal; ``llmkit simulate``).

Like a real tokenizer, the count depends only on the request, never on the seed: the same prompt costs the
same in a generation call and in the provider's token-count endpoint. Text is estimated at ~4 characters
per token over the prompt's strings (not its JSON punctuation, so ``input="Hi"`` and a one-message list
saying "Hi" cost the same); each image costs what its provider's documented formula says
(``Provider.image_tokens``, the formula lesson 5 compares usage with), never the size of its base64.
"""

from __future__ import annotations

import base64
from typing import Any

from .. import providers
from ..errors import LlmkitError
from ..providers._scripted import estimate_tokens

# Strings that name things rather than say them: not billed as prompt text.
_LABELS = frozenset({"type", "role", "model", "mime_type", "mimeType", "media_type", "detail", "file_id",
                     "cache_control", "tool_choice", "format", "status", "id", "call_id"})
_UNKNOWN_IMAGE = (1024, 1024)  # an image given by URL: the simulator does not fetch it


def _image(part: dict) -> str | None:
    """The data URL, base64 data or URL of an image part in any provider's format, else None."""
    kind = part.get("type")
    if kind == "image_url":
        url = part.get("image_url")
        return url.get("url") if isinstance(url, dict) else url
    if kind == "input_image":
        return part.get("image_url") or ""
    if kind == "image" and isinstance(part.get("source"), dict):
        return part["source"].get("data") or part["source"].get("url") or ""
    inline = part.get("inlineData") or part.get("inline_data")
    if isinstance(inline, dict) and str(inline.get("mimeType") or inline.get("mime_type") or "").startswith("image/"):
        return inline.get("data") or ""
    return None


def _size(ref: str) -> tuple[int, int]:
    from ..multimodal import image_size

    data = ref.split(",", 1)[1] if ref.startswith("data:") else ref
    data = data.replace("-", "+").replace("_", "/")  # google-genai sends URL-safe base64
    try:
        return image_size(base64.b64decode(data + "=" * (-len(data) % 4), validate=True))
    except (ValueError, OSError, LlmkitError):  # a URL (not base64), or bytes no image library reads
        return _UNKNOWN_IMAGE


def prompt_tokens(provider: str, model: str, body: Any) -> int:
    """The input tokens of ``body``: its text estimated, its images by ``provider``'s formula for ``model``."""
    texts: list[str] = []
    images: list[tuple[int, int]] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            ref = _image(value)
            if ref is not None:
                images.append(_size(ref))
                return
            for key, item in value.items():
                if key not in _LABELS:
                    walk(item)

    walk(body)
    rule = providers.get(provider)
    return estimate_tokens("\n".join(texts)) + sum(rule.image_tokens(w, h, model) for w, h in images)
