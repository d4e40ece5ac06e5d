"""Script for lesson 06's cassette (provenance: scripted).

The scripted model only "remembers" what is in the request it receives: the recall answer depends on
whether the user's name and project are still somewhere in the request (a turn, or a summary in the
system prompt). Token counts (count_tokens / countTokens and usage) are the renderer's ~4 chars/token
estimate of the request; live runs get the providers' own numbers.
"""

import json

from llmkit.replay.scripted import Reply, estimate_tokens

NAME, PROJECT = "Ada", "tide-gauge dashboard"

TOPICS = {
    "sse": "Server-sent events keep one HTTP response open and push `data:` lines as they are ready",
    "retries": "Retry only what can succeed on a second try: 429s and 5xx, with exponential backoff and jitter",
    "sqlite": "SQLite handles this well: one file, WAL mode for concurrent readers, and an index on the timestamp",
    "plot": "Plot the raw readings as a thin line and the hourly mean on top, with the tide prediction dashed",
    "alerts": "Alert on the rate of change, not the level alone, and debounce so one spike does not page anyone",
    "tests": "Test the parser with recorded sensor payloads, including the malformed ones you have already seen",
    "deploy": "Ship it as one static binary behind a reverse proxy; keep the config in environment variables",
    "units": "Store metres as integers of millimetres and convert only at the edges, when you display",
}
FILLER = (" That keeps the moving parts few. Measure before you optimise, keep the data you ingest immutable, and "
          "write down the decision so the next person knows why it was made.")


def _recall(blob: str) -> str:
    knows_name, knows_project = NAME in blob, PROJECT in blob
    if knows_name and knows_project:
        return f"You are {NAME}, and at the start you told me about your {PROJECT} in Rust."
    if knows_project:
        return f"I don't see your name in our conversation, but you are building a {PROJECT}."
    return "I'm sorry — I don't know your name or your project; that part of our conversation is not in what I can see."


def reply(req):
    body = req.body or {}
    blob = json.dumps(body)
    if req.api in ("count_tokens", "count_gemini"):
        return Reply()
    system = json.dumps(body.get("system") or body.get("systemInstruction") or body.get("instructions")
                        or [m for m in body.get("messages") or [] if m.get("role") in ("system", "developer")])
    text = req.last_user_text()
    if "Summarise the conversation" in system:
        facts = []
        if NAME in text:
            facts.append(f"The user is {NAME}")
        if PROJECT in text:
            facts.append(f"they are building a {PROJECT} in Rust")
        topics = [t for t in TOPICS if t in text.lower()]
        if topics:
            facts.append("we discussed " + ", ".join(topics))
        return Reply(text=("; ".join(facts) or "Small talk only") + ".")
    lower = text.lower()
    if "my name" in lower:
        return Reply(text=_recall(blob))
    if lower.startswith("hi"):
        return Reply(text=f"Nice to meet you, {NAME}! A {PROJECT} sounds fun — what would you like to start with?")
    for topic, answer in TOPICS.items():
        if topic in lower:
            return Reply(text=answer + "." + FILLER)
    return None


# --- prompt caching --------------------------------------------------------------------------------------
# A cache hit needs a prefix seen before, long enough for the provider's documented minimum:
# OpenAI caches prompts of 1024 tokens or more, in steps of 128 (platform.openai.com/docs/guides/prompt-caching);
# Anthropic caches only up to a block marked with cache_control, at least 4096 tokens for Claude Haiku 4.5
# (docs.claude.com, prompt caching); Gemini 2.5 Flash caches implicitly from 1024 tokens
# (ai.google.dev/gemini-api/docs/caching).
HANDBOOK_TITLE = "TIDE-GAUGE TEAM HANDBOOK"
MIN_PREFIX = {"openai": 1024, "anthropic": 4096, "gemini": 1024}
_cached_prefixes: set = set()


def _prefix_text(req, body):
    """The stable text a provider may cache: the system prompt / instructions (Anthropic: only when the
    block carries cache_control)."""
    if req.provider == "anthropic":
        blocks = body.get("system") if isinstance(body.get("system"), list) else []
        return "".join(b.get("text", "") for b in blocks if b.get("cache_control"))
    if req.provider == "gemini":
        return json.dumps(body.get("systemInstruction") or "")
    if body.get("instructions"):
        return body["instructions"]
    first = (body.get("messages") or [{}])[0]
    return first.get("content", "") if first.get("role") in ("system", "developer") else ""


def _with_cache(req, body, text):
    """A reply whose usage reports a cache write or hit exactly where the request qualifies."""
    total = estimate_tokens(json.dumps(body))
    prefix = _prefix_text(req, body)
    tokens = estimate_tokens(prefix) + 4 if prefix else 0
    key = (req.provider, req.api, prefix)
    if tokens < MIN_PREFIX[req.provider]:
        return Reply(text=text, input_tokens=total)
    seen = key in _cached_prefixes
    _cached_prefixes.add(key)
    if req.provider == "openai":
        return Reply(text=text, input_tokens=total, cached_tokens=tokens // 128 * 128 if seen else 0)
    if req.provider == "anthropic":
        return Reply(text=text, input_tokens=total, cached_tokens=tokens if seen else 0,
                     cache_write_tokens=0 if seen else tokens)
    return Reply(text=text, input_tokens=total, cached_tokens=tokens if seen else 0)


_plain_reply = reply


def reply(req):  # noqa: F811  (the conversation replies above, plus the handbook questions)
    body = req.body or {}
    if req.api in ("count_tokens", "count_gemini"):
        return Reply()
    if HANDBOOK_TITLE in json.dumps(body) or "cache_control" in json.dumps(body):
        text = req.last_user_text().lower()
        for topic, answer in TOPICS.items():
            if topic in text:
                return _with_cache(req, body, "The handbook says: " + answer + ".")
        return None
    return _plain_reply(req)


# --- explicit caching: Gemini's cachedContents resource --------------------------------------------------
# ai.google.dev/gemini-api/docs/caching lists 1024 tokens as the minimum for Gemini 2.5 Flash; the API refuses
# a smaller cache with 400 INVALID_ARGUMENT. A request that uses a cache may not set its own system instruction,
# tools or tool config (also a 400). promptTokenCount counts the cached tokens too.
_cache_sizes: list[int] = []  # the caches created so far, newest last

_implicit_reply = reply


def reply(req):  # noqa: F811  (everything above, plus client.caches and generate_content(cached_content=...))
    body = req.body or {}
    if req.api == "caches":
        if not req.path.endswith("/cachedContents"):  # one cache: cachedContents/{id}
            # caches.delete: the API answers with an empty JSON object; the lesson never GETs or PATCHes a cache
            return Reply() if req.method == "DELETE" else None
        size = estimate_tokens(json.dumps({k: body[k] for k in ("systemInstruction", "contents") if k in body}))
        if size < MIN_PREFIX["gemini"]:
            return Reply(status=400, error=f"Cached content is too small. total_token_count={size}, "
                                           f"min_total_token_count={MIN_PREFIX['gemini']}")
        _cache_sizes.append(size)
        return Reply(input_tokens=size)
    if req.provider == "gemini" and body.get("cachedContent"):
        if any(body.get(k) for k in ("systemInstruction", "tools", "toolConfig")):
            return Reply(status=400, error="CachedContent can not be used with GenerateContent request setting "
                                           "system_instruction, tools or tool_config.\n\nProposed fix: move those "
                                           "values to CachedContent from GenerateContent request.")
        text = req.last_user_text().lower()
        size = _cache_sizes[-1]
        for topic, answer in TOPICS.items():
            if topic in text:
                return Reply(text="The handbook says: " + answer + ".",
                             input_tokens=size + estimate_tokens(json.dumps(body)), cached_tokens=size)
        return None
    return _implicit_reply(req)
