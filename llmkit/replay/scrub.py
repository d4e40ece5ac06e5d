"""Keeping secrets out of cassettes (lesson 0).

Introduced in lesson 0 (00_setup_and_replay). Scrubbing works by value (the keys actually configured:
as written in any case, percent-encoded or ``\\u``-escaped character by character, and base64-encoded at
any byte offset) and by pattern (every key format of the three providers, bearer tokens, Google OAuth
tokens, ``key=`` query values; see :data:`llmkit.replay.secrets.KEY_PATTERNS`). JSON object keys are
scrubbed like values; response headers whose name or role is sensitive (cookies, organisation/project
ids) are dropped, and request headers are never stored at all, so ``x-stainless-*`` machine details
cannot leak. :func:`assert_no_secret` is the last gate: it runs the scanner of
:mod:`llmkit.replay.secrets` over what is about to be written and refuses, naming the field, when
anything survived.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..errors import SecretLeakError
from .secrets import KEY_PATTERNS, SecretFinding, SecretScanner, key_spans

#: The key formats as compiled patterns (what :func:`scrub_text` replaces, less look-alikes; see
#: :func:`llmkit.replay.secrets.key_spans`).
SECRET_PATTERNS: tuple[re.Pattern[str], ...] = tuple(re.compile(rx, re.IGNORECASE) for rx in KEY_PATTERNS.values())

SENSITIVE_HEADERS = frozenset({
    "set-cookie", "cookie", "authorization", "x-api-key", "x-goog-api-key", "openai-organization",
    "openai-project", "anthropic-organization-id", "x-organization-id", "proxy-authorization",
})

REDACTED = "REDACTED"


@lru_cache(maxsize=64)
def _value_pattern(secret: str) -> re.Pattern[str]:
    """``secret`` with each character as itself, ``%hh`` or ``\\u00hh``, in any case."""
    def char(c: str) -> str:
        code = f"{ord(c):02x}"
        return f"(?:{re.escape(c)}|%{code}|\\\\u{ord(c):04x})" if ord(c) < 128 else re.escape(c)

    return re.compile("".join(char(c) for c in secret), re.IGNORECASE)


@lru_cache(maxsize=64)
def base64_forms(secret: str) -> tuple[str, ...]:
    """The base64 text that ``secret`` turns into at byte offsets 0, 1 and 2 (both alphabets), cut to the
    characters that depend on the secret alone, so they appear whatever bytes surround it."""
    raw = secret.encode()
    forms = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw + b"\0\0").decode()
        first = -(-offset * 8 // 6)  # first character made only of the secret's bits
        last = (offset + len(raw)) * 8 // 6  # one past the last such character
        stable = encoded[first:last]
        if len(stable) >= 8:
            forms |= {stable, stable.translate(str.maketrans("+/", "-_"))}
    return tuple(sorted(forms, key=len, reverse=True))


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace configured secret values (in any encoding above) and secret-looking tokens in ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 8:
            text = _value_pattern(secret).sub(REDACTED, text)
            for form in base64_forms(secret):
                # Same length, base64 alphabet: an encoded upload stays decodable, with zeros where the key was.
                text = text.replace(form, "A" * len(form))
    # Right to left, so earlier spans keep their offsets.
    for start, end, _ in reversed(list(key_spans(text))):
        text = text[:start] + REDACTED + text[end:]
    return text


def scrub(value: Any, secrets: Iterable[str] = ()) -> Any:
    """Scrub every string inside a JSON-like value, object keys included."""
    secrets = [s for s in secrets if s]
    if isinstance(value, dict):
        return {scrub_text(str(k), secrets): scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    if isinstance(value, str):
        return scrub_text(value, secrets)
    return value


def scrub_headers(headers: dict[str, str], secrets: Iterable[str] = ()) -> dict[str, str]:
    """Drop sensitive headers, ``x-stainless-*`` machine details and any header whose name holds a
    secret; scrub the values of the rest."""
    secrets = [s for s in secrets if s]
    return {k: scrub_text(v, secrets) for k, v in headers.items()
            if k.lower() not in SENSITIVE_HEADERS and not k.lower().startswith("x-stainless")
            and scrub_text(k, secrets) == k}


def scrub_query(query: str, secrets: Iterable[str] = ()) -> str:
    """The query string without the ``key`` parameter, every other name and value scrubbed."""
    secrets = [s for s in secrets if s]
    return urlencode([(scrub_text(k, secrets), scrub_text(v, secrets))
                      for k, v in parse_qsl(query, keep_blank_values=True) if k != "key"])


def find_secret(value: Any, secrets: Iterable[str] = (), where: str = "",
                blobs: Callable[[str], bytes | None] | None = None) -> str | None:
    """Return the path of the first field that still holds a secret (in any encoding), else None.

    A whole cassette document is scanned as :meth:`SecretScanner.scan_cassette` does (streams joined)."""
    found = _find(value, secrets, where, blobs)
    return found.field if found else None


def _find(value: Any, secrets: Iterable[str], where: str,
          blobs: Callable[[str], bytes | None] | None) -> SecretFinding | None:
    scanner = SecretScanner(secrets)
    return scanner.scan_cassette(value, blobs) if not where else scanner.scan_value(value, where, blobs)


def leak_error(found: SecretFinding, what: str = "cassette") -> SecretLeakError:
    """The error for a secret that survived scrubbing: where and in what shape, never the secret itself."""
    return SecretLeakError(
        f"refusing to write the {what}: {found.describe()} survived scrubbing. Nothing was written. "
        "Remove the secret from that field (or from what the cell sends) and record again.",
        field=found.field)


def assert_no_secret(value: Any, secrets: Iterable[str] = (), what: str = "cassette", where: str = "",
                     blobs: Callable[[str], bytes | None] | None = None) -> None:
    """Raise :class:`SecretLeakError` naming the field if a secret survived (the secret is never echoed)."""
    found = _find(value, secrets, where, blobs)
    if found:
        raise leak_error(found, what)
