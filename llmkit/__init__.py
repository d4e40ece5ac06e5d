"""llmkit: the helper package behind the lessons in ``notebooks/``.

``import llmkit`` is light: the SDKs are imported when a client is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Kit", "__version__", "start"]

if TYPE_CHECKING:
    from .kit import Kit, start


def __getattr__(name: str) -> Any:
    if name in ("Kit", "start"):
        from . import kit

        return getattr(kit, name)
    raise AttributeError(f"module 'llmkit' has no attribute {name!r}")
