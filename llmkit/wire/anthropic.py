"""Anthropic Messages over raw HTTP, without the SDK.

Introduced in lesson 1 (01_sdk_vs_http); the stream parser in lesson 2 (02_streaming).

The code lives in ``llmkit.providers`` (one place per provider); this is the lessons' import path.
"""

from llmkit.providers import _anthropic_wire
from llmkit.providers._anthropic_wire import *  # noqa: F403 - the lessons' import path for the provider's wire code

__all__ = list(_anthropic_wire.__all__)
