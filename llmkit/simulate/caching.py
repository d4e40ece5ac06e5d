"""Prompt caching in the simulator: usage that reports cache writes and hits where the real APIs would
(lesson 6, 06_conversations; ``llmkit simulate``).

A hit needs a stable prefix seen before and at least the provider's documented minimum length:

- OpenAI caches prompts of 1024 tokens or more automatically, reported in steps of 128
  (platform.openai.com/docs/guides/prompt-caching);
- Anthropic caches only up to a block marked ``cache_control``, from 4096 tokens for Claude Haiku 4.5 and
  Opus 4.5, 1024 for the other current models; the first request reports a write, the next ones a read;
- Gemini 2.5 caches implicitly from 1024 tokens and explicitly through the ``cachedContents`` resource
  (``client.caches.create``), which refuses a smaller cache with 400 INVALID_ARGUMENT; a request that uses a
  cache may not set its own system instruction, tools or tool config.

The stable prefix is the system prompt or instructions (OpenAI, Gemini) or the system blocks up to the last one
marked ``cache_control`` (Anthropic). Sizes are the same ~4 characters/token estimate as the rest of the
simulator's usage.
"""

from __future__ import annotations

import json
from typing import Any

from .. import providers
from ..providers._scripted import estimate_tokens
from ..replay.scripted import Reply, ScriptedRequest


def prefix_text(req: ScriptedRequest) -> str:
    """The stable text ``req``'s provider may cache; empty when nothing qualifies."""
    return providers.get(req.provider).cacheable_prefix(req.body if isinstance(req.body, dict) else {})


class PromptCache:
    """The prefixes one simulator has seen and the explicit caches it holds (name → size in tokens)."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str, str, str]] = set()
        self.explicit: dict[str, int] = {}

    def apply(self, req: ScriptedRequest, reply: Reply) -> Reply:
        """Set ``reply``'s cache usage for ``req`` (a chat, Responses, Messages or generateContent call), or
        turn it into the error the API sends for a misused explicit cache."""
        if reply.status >= 400 or reply.refusal is not None:
            return reply
        body = req.body if isinstance(req.body, dict) else {}
        if body.get("cachedContent"):  # Gemini's explicit cache (only its requests carry the field)
            return self._use_explicit(body, reply)
        prefix = prefix_text(req)
        tokens = estimate_tokens(prefix) + 4 if prefix else 0
        spec = providers.get(req.provider)
        if tokens < spec.cache_minimum(req.model):
            return reply
        key = (req.provider, req.api, req.model, prefix)
        seen = key in self._seen
        self._seen.add(key)
        reply.input_tokens = max(reply.input_tokens or 0, tokens + estimate_tokens(req.last_user_text()))
        reply.cached_tokens, reply.cache_write_tokens = spec.cache_usage(tokens, seen)
        return reply

    def _use_explicit(self, body: dict, reply: Reply) -> Reply:
        size = self.explicit.get(str(body["cachedContent"]))
        if size is None:
            return Reply(status=403, error="CachedContent not found (or permission denied)")
        if any(body.get(k) for k in ("systemInstruction", "tools", "toolConfig")):
            return Reply(status=400, error="CachedContent can not be used with GenerateContent request setting "
                                           "system_instruction, tools or tool_config.\n\nProposed fix: move those "
                                           "values to CachedContent from GenerateContent request.")
        reply.input_tokens = size + estimate_tokens(json.dumps(body))
        reply.cached_tokens = size
        return reply

    def create(self, req: ScriptedRequest) -> Reply:
        """The reply to ``POST /v1beta/cachedContents``: the cache's size, or the API's 400 when it is too small.
        :meth:`created` learns the new cache's name from the rendered resource."""
        body = req.body if isinstance(req.body, dict) else {}
        size = estimate_tokens(json.dumps({k: body[k] for k in ("systemInstruction", "contents", "tools")
                                           if k in body}))
        minimum = providers.get(req.provider).cache_minimum(req.model)
        if size < minimum:
            return Reply(status=400, error=f"Cached content is too small. total_token_count={size}, "
                                           f"min_total_token_count={minimum}")
        return Reply(input_tokens=size)

    def created(self, resource: Any) -> None:
        if isinstance(resource, dict) and resource.get("name"):
            self.explicit[str(resource["name"])] = int(resource.get("usageMetadata", {}).get("totalTokenCount", 0))

    def delete(self, path: str) -> Reply:
        name = "cachedContents/" + path.rsplit("/", 1)[1]
        if self.explicit.pop(name, None) is None:
            return Reply(status=403, error="CachedContent not found (or permission denied)")
        return Reply(json_body={})
