"""Images as model input: from a path, bytes, a PIL image or a matplotlib figure to each provider's part.

Introduced in lesson 5 (05_multimodal). :func:`image_part` returns the provider-neutral part that
``llmkit.chat`` sends to any provider::

    part = image_part("screenshot.png", provider="anthropic")   # sniffed, downscaled, checked
    chat.complete(kit, "anthropic", [chat.user([part, {"type": "text", "text": "What is wrong here?"}])])

and :func:`openai_chat_part`, :func:`openai_responses_part`, :func:`anthropic_part`, :func:`gemini_part`
build each provider's own shape, so the lesson can show exactly what goes over the wire.

The media type comes from the file's first bytes (its "magic number"), never from its name: a PNG saved
as ``photo.jpg`` is still a PNG, and a provider told otherwise rejects the request. Pillow does the
resizing; nothing here is clever, it only applies the limits the providers document (constants below).
"""

from __future__ import annotations

import base64
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import providers
from .errors import ImageError  # re-exported: every llmkit error lives in llmkit.errors

PNG, JPEG, GIF, WEBP = "image/png", "image/jpeg", "image/gif", "image/webp"


@dataclass(frozen=True)
class ImageLimits:
    """What a provider documents about image input. ``None`` means: no documented limit of that kind."""

    formats: frozenset[str]
    max_bytes: int  # per image as sent (base64 inflates the request by 4/3; the limits below account for it)
    max_edge: int | None  # hard limit on either side, in pixels
    fit_box: int | None  # the image is scaled to fit this square first
    short_side: int | None  # ... then its short side to at most this
    long_edge: int | None  # ... or its long edge to at most this (the recommended size)
    max_patches: int | None = None  # patch models: shrunk until it covers at most this many patches
    patch_px: int = 32  # ... of this many pixels square


MB = 1024 * 1024

#: What each provider documents about image input for the kit's model (``llmkit.models.MODELS``); the
#: figures and their sources are in each ``llmkit.providers`` module. Another model's rule (OpenAI has
#: two families): :func:`limits`.
LIMITS: dict[str, ImageLimits] = {p: providers.get(p).image_limits for p in providers.names()}

# Pillow refuses images above ~179 megapixels as possible decompression bombs; we refuse earlier.
MAX_PIXELS = 100_000_000


# --- what the bytes are ----------------------------------------------------------------------------
def sniff_media_type(data: bytes) -> str:
    """The media type from the first bytes (PNG, JPEG, GIF or WebP); raises :class:`ImageError` otherwise."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    head = data[:12]
    raise ImageError(f"not a PNG, JPEG, GIF or WebP image (it starts with {head!r}). Convert it first, "
                     "e.g. PIL.Image.open(path).save('image.png').")


def to_bytes(source: Any) -> bytes:
    """Encoded image bytes from a path, bytes, a PIL image (saved as PNG) or a matplotlib figure (PNG)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"no image file at {path}; check the path (the kernel runs in the notebook's folder).")
        return path.read_bytes()
    if hasattr(source, "savefig"):  # a matplotlib Figure
        buf = io.BytesIO()
        source.savefig(buf, format="png")
        return buf.getvalue()
    if hasattr(source, "save") and hasattr(source, "size") and hasattr(source, "mode"):  # a PIL image
        buf = io.BytesIO()
        fmt = "PNG"
        img = source if source.mode in ("RGB", "RGBA", "L", "LA", "P", "1") else source.convert("RGBA")
        img.save(buf, format=fmt)
        return buf.getvalue()
    raise ImageError(f"cannot make an image from {type(source).__name__}; pass a path, bytes, a PIL image "
                     "or a matplotlib figure.")


def _open(data: bytes) -> Any:
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data))
        w, h = img.size
    except Exception as e:  # Pillow raises several types for broken files
        raise ImageError(f"the image data cannot be decoded ({e}); is the file complete?") from e
    if w * h > MAX_PIXELS:
        raise ImageError(f"{w}x{h} px is {w * h / 1e6:.0f} megapixels, above the {MAX_PIXELS / 1e6:.0f} MP this "
                         "kit accepts; crop or downscale it first.")
    return img


def image_size(image: dict | bytes) -> tuple[int, int]:
    """(width, height) in pixels of a neutral image part or of encoded bytes."""
    data = image["data"] if isinstance(image, dict) else image
    return _open(data).size


# --- fitting to a provider -------------------------------------------------------------------------
def limits(provider: str, model: str | None = None) -> ImageLimits:
    """The image rule for ``model`` at ``provider`` (the kit's model when None). Introduced in lesson 5
    (05_multimodal): OpenAI's gpt-4.1-mini counts 32 px patches while gpt-4o tiles, for example."""
    return _limits(provider, model)


def patch_fit(width: int, height: int, max_patches: int, patch: int = 32) -> tuple[int, int]:
    """The size a patch model works at: unchanged if it covers at most ``max_patches`` patches, else
    shrunk to that area (aspect kept) and then to a whole number of patches, as OpenAI documents it.
    Introduced in lesson 5 (05_multimodal)."""
    if math.ceil(width / patch) * math.ceil(height / patch) <= max_patches:
        return width, height
    scale = math.sqrt(patch * patch * max_patches / (width * height))
    scale *= min(math.floor(width * scale / patch) / (width * scale / patch),
                 math.floor(height * scale / patch) / (height * scale / patch))
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def target_size(width: int, height: int, provider: str, model: str | None = None) -> tuple[int, int]:
    """The size ``provider`` (for ``model``; the kit's model when None) works at, by its documented
    scaling; never larger than the original."""
    lim = _limits(provider, model)
    if lim.max_patches:
        return patch_fit(width, height, lim.max_patches, lim.patch_px)
    scale = 1.0
    if lim.fit_box:
        scale = min(scale, lim.fit_box / max(width, height))
    if lim.short_side:
        scale = min(scale, lim.short_side / min(width * scale, height * scale) * scale)
    if lim.long_edge:
        scale = min(scale, lim.long_edge / max(width, height))
    if scale >= 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _limits(provider: str, model: str | None = None) -> ImageLimits:
    try:
        default = LIMITS[provider]
    except KeyError:
        raise ImageError(f"unknown provider {provider!r}; choose one of {', '.join(LIMITS)}.") from None
    return default if model is None else providers.get(provider).image_limits_for(model)


def _encode(img: Any, media_type: str) -> bytes:
    buf = io.BytesIO()
    if media_type == JPEG:
        img.convert("RGB").save(buf, format="JPEG", quality=88, optimize=True)
    elif media_type == WEBP:
        img.save(buf, format="WEBP", quality=88)
    else:
        img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def fit_image(data: bytes, provider: str, *, model: str | None = None, resize: bool = True) -> tuple[bytes, str]:
    """Bytes and media type ready for ``provider`` (and ``model``; the kit's model when None): downscaled to
    the size the model works at, in a format it accepts (a GIF becomes a PNG for Gemini), under its size
    limit. With ``resize=False`` an image that does not fit raises :class:`ImageError` instead of being
    changed."""
    lim = _limits(provider, model)
    media = sniff_media_type(data)
    img = _open(data)
    w, h = img.size
    if lim.max_edge and max(w, h) > lim.max_edge and not resize:
        raise ImageError(f"{w}x{h} px exceeds {provider}'s {lim.max_edge} px limit per side; pass resize=True "
                         "or downscale it.")
    tw, th = target_size(w, h, provider, model)
    if media not in lim.formats:
        if not resize:
            raise ImageError(f"{provider} does not accept {media}; accepted: {', '.join(sorted(lim.formats))}. "
                             "Pass resize=True to convert it to PNG.")
        media = PNG
    elif (tw, th) == (w, h) and len(data) <= lim.max_bytes:
        return data, media  # already fine: send the original bytes untouched
    if not resize:
        raise ImageError(f"{len(data) / MB:.1f} MB is over {provider}'s {lim.max_bytes / MB:.1f} MB image limit; "
                         "pass resize=True or compress it.")
    from PIL import Image

    if getattr(img, "is_animated", False):
        img.seek(0)  # providers read the first frame of an animation only
    for _ in range(12):
        resized = img if (tw, th) == (w, h) else img.resize((tw, th), Image.Resampling.LANCZOS)
        out = _encode(resized, media)
        if len(out) <= lim.max_bytes:
            return out, media
        tw, th = max(1, int(tw * 0.8)), max(1, int(th * 0.8))
    raise ImageError(f"could not bring the image under {provider}'s {lim.max_bytes / MB:.1f} MB limit; "
                     "send a smaller or JPEG-compressed image.")


def image_part(source: Any, provider: str | None = None, *, model: str | None = None,
               resize: bool = True) -> dict:
    """A neutral image part ``{"type": "image", "data": bytes, "media_type": ...}`` (lesson 5).

    With ``provider`` the image is fitted to the limits of that provider's ``model`` (the kit's model
    when None; see :func:`fit_image`); without, it is only sniffed and checked, and sent as is.
    """
    data = to_bytes(source)
    if provider is None:
        media = sniff_media_type(data)
        _open(data)
    else:
        data, media = fit_image(data, provider, model=model, resize=resize)
    return {"type": "image", "data": data, "media_type": media}


def text_part(text: str) -> dict:
    return {"type": "text", "text": text}


# --- each provider's own shape ---------------------------------------------------------------------
def _b64(part: dict) -> str:
    return base64.b64encode(part["data"]).decode("ascii")


def data_url(part: dict) -> str:
    return f"data:{part['media_type']};base64,{_b64(part)}"


def openai_chat_part(part: dict, detail: str = "auto") -> dict:
    """OpenAI Chat Completions: ``{"type": "image_url", "image_url": {"url": "data:...", "detail": ...}}``."""
    return {"type": "image_url", "image_url": {"url": data_url(part), "detail": detail}}


def openai_responses_part(part: dict, detail: str = "auto") -> dict:
    """OpenAI Responses API: ``{"type": "input_image", "image_url": "data:...", "detail": ...}``."""
    return {"type": "input_image", "image_url": data_url(part), "detail": detail}


def anthropic_part(part: dict) -> dict:
    """Anthropic Messages: a base64 ``image`` content block."""
    return {"type": "image", "source": {"type": "base64", "media_type": part["media_type"], "data": _b64(part)}}


def gemini_part(part: dict) -> dict:
    """Gemini: an ``inline_data`` part (google-genai accepts raw bytes and base64-encodes them itself)."""
    return {"inline_data": {"mime_type": part["media_type"], "data": part["data"]}}


# --- what an image costs -----------------------------------------------------------------------------
def estimate_image_tokens(width: int, height: int, provider: str, model: str = "") -> int:
    """The provider's documented image-token formula (lesson 5), for comparison with ``kit.usage``.

    - Anthropic: tokens ≈ width × height / 750 after scaling the long edge to 1568 px.
    - OpenAI gpt-4.1-mini / gpt-4.1-nano / o4-mini: 32 px patches (at most 1536, the image shrunk to fit),
      × 1.62 for 4.1-mini; other models (gpt-4o, gpt-4.1): 85 + 170 per 512 px tile after the 2048 / 768
      scaling. ``model=""`` means the kit's model.
    - Gemini 2.x: 258 tokens if both sides ≤ 384 px, else 258 per 768×768 tile.
    """
    _limits(provider)  # an unknown provider raises ImageError
    return providers.get(provider).image_tokens(width, height, model)


__all__ = [
    "GIF", "JPEG", "LIMITS", "PNG", "WEBP", "ImageError", "ImageLimits", "anthropic_part", "data_url",
    "estimate_image_tokens", "fit_image", "gemini_part", "image_part", "image_size", "limits",
    "openai_chat_part", "openai_responses_part", "patch_fit", "sniff_media_type", "target_size", "text_part",
    "to_bytes",
]

