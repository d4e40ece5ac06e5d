"""The SSE relay server and its web client (lesson 9, 09_sse_server).

Introduced in lesson 9 (09_sse_server)::

    from llmkit.server import create_app, InProcessBuffer, RedisStreamBuffer
    app = create_app(kit, allowed_origins=["http://127.0.0.1:8000"])

``llmkit serve-chat`` runs it with uvicorn. FastAPI, sse-starlette and redis are imported when an app or
a Redis buffer is built, not on ``import llmkit.server``.
"""

from .app import Relay, create_app, kit_upstream
from .buffers import EventBuffer, InProcessBuffer, StoredEvent
from .models import ChatRequest, Message, describe_errors
from .redis_buffer import RedisStreamBuffer

__all__ = [
    "ChatRequest",
    "EventBuffer",
    "InProcessBuffer",
    "Message",
    "RedisStreamBuffer",
    "Relay",
    "StoredEvent",
    "create_app",
    "describe_errors",
    "kit_upstream",
]
