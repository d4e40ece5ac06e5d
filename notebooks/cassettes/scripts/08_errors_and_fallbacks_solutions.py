"""Script for the worked solutions of lesson 08 (provenance: scripted).

The lesson's own answers, plus one for exercise 4: asked to continue an interrupted answer (the partial
text is the assistant turn before the request), it answers with the rest of that answer only.
"""

import importlib.util
from pathlib import Path

from llmkit.replay.scripted import Reply, ScriptedRequest

_LESSON = Path(__file__).with_name("08_errors_and_fallbacks.py")
_spec = importlib.util.spec_from_file_location("lesson08_script", _LESSON)
lesson = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lesson)


def _partial(req: ScriptedRequest) -> str:
    for message in reversed((req.body or {}).get("messages") or []):
        if message.get("role") == "assistant":
            content = message.get("content")
            return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
    return ""


def reply(req: ScriptedRequest) -> Reply | None:
    if req.last_user_text().startswith("Continue exactly where you stopped"):
        full, partial = lesson.ANSWERS["backoff"], _partial(req)
        rest = full[len(partial):] if full.startswith(partial) else full
        return Reply(text=rest, ttft_ms=350.0, tokens_per_s=60.0)
    return lesson.reply(req)
