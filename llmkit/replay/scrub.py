"""Keeping secrets out of cassettes (lesson 0).

Scrubbing works by value (the keys actually configured, also URL-encoded and base64-encoded) and by
pattern (``sk-…``, ``sk-ant-…``, ``AIza…``, bearer tokens, ``key=`` query values). Sensitive response
headers (cookies, organisation/project ids) are dropped, and request headers are never stored at all,
so ``x-stainless-*`` machine details cannot leak. :func:`find_secret` is the last gate: the recorder
refuses to write a cassette in which it still finds anything, and says in which field.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from ..errors import SecretLeakError

SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"sk-ant-[A-Za-z0-9_-]{10,}"),
    re.compile(r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
    re.compile(r"AIza[0-9A-Za-z_-]{30,}"),
    re.compile(r"[Bb]earer\s+[A-Za-z0-9._~+/-]{20,}=*"),
    re.compile(r"(?<=[?&]key=)[^&\s\"']{8,}"),
)

SENSITIVE_HEADERS = frozenset({
    "set-cookie", "cookie", "authorization", "x-api-key", "x-goog-api-key", "openai-organization",
    "openai-project", "anthropic-organization-id", "x-organization-id", "proxy-authorization",
})

REDACTED = "REDACTED"


def _value_forms(value: str) -> set[str]:
    raw = value.encode()
    return {value, quote(value, safe=""), base64.b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(raw).decode().rstrip("=")}


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace configured secret values and secret-looking tokens in ``text``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def scrub(value: Any, secrets: Iterable[str] = ()) -> Any:
    """Scrub every string inside a JSON-like value."""
    secrets = [s for s in secrets if s]
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    if isinstance(value, str):
        return scrub_text(value, secrets)
    return value


def scrub_headers(headers: dict[str, str], secrets: Iterable[str] = ()) -> dict[str, str]:
    """Drop sensitive headers and any ``x-stainless-*`` machine detail; scrub the rest."""
    return {k: scrub_text(v, secrets) for k, v in headers.items()
            if k.lower() not in SENSITIVE_HEADERS and not k.lower().startswith("x-stainless")}


def find_secret(value: Any, secrets: Iterable[str] = (), where: str = "") -> str | None:
    """Return the path of the first field that still holds a secret (in any encoding), else None."""
    if isinstance(value, dict):
        for k, v in value.items():
            hit = find_secret(v, secrets, f"{where}.{k}" if where else str(k))
            if hit:
                return hit
        return None
    if isinstance(value, list):
        for i, v in enumerate(value):
            hit = find_secret(v, secrets, f"{where}[{i}]")
            if hit:
                return hit
        return None
    if isinstance(value, str):
        for secret in secrets:
            if secret and len(secret) >= 8 and any(form in value for form in _value_forms(secret)):
                return where or "<value>"
        if any(p.search(value) for p in SECRET_PATTERNS):
            return where or "<value>"
    return None


def assert_no_secret(value: Any, secrets: Iterable[str] = (), what: str = "cassette") -> None:
    """Raise :class:`SecretLeakError` naming the field if a secret survived."""
    field = find_secret(value, list(secrets))
    if field:
        raise SecretLeakError(
            f"refusing to write the {what}: a secret survived scrubbing in field {field!r}. "
            "Nothing was written. Remove the secret from that field (or from what the cell sends) "
            "and record again.", field=field)
