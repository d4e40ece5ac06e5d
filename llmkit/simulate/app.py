"""The simulator's ASGI app: the providers' wire formats on loopback (lesson 0, ``llmkit simulate``).

A Starlette app with one route per endpoint the lessons call: OpenAI Chat Completions, Responses and its
``input_tokens`` count, the models list; Anthropic Messages and ``count_tokens``; Gemini
``generateContent``, ``streamGenerateContent`` (SSE with ``alt=sse``, else a JSON array), ``countTokens``
and explicit caches (``cachedContents``: create, delete). Usage reports prompt-cache writes and hits where
the real APIs would (:mod:`llmkit.simulate.caching`). Each request must carry a key in its provider's header;
the answer comes from :mod:`llmkit.simulate.answer`, is framed by the provider module's scripted renderer and
checked by ``llmkit.replay.scripted.render`` like any scripted reply, then served at its seeded pace.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections import Counter
from typing import Any

from .. import providers
from ..errors import ClientGone, ConfigError, ScriptedReplyRejected
from ..replay.cassette import RecordedRequest
from ..replay.scripted import Reply, ScriptedRequest, render
from ..replay.server import _DisconnectAwareSend, _send_json, serve_response
from .answer import answer, fault_for
from .caching import PromptCache
from .settings import SimSettings

__all__ = ["SPOKEN", "SimulatorApp", "create_app"]

#: The provider APIs the simulator answers (``Provider.api_of`` names); embeddings are not among them:
#: no lesson sends them to a provider.
SPOKEN = frozenset({"chat", "responses", "count_tokens", "messages", "generate", "count_gemini", "caches"})
#: The batch APIs (lesson 11): each provider's desk answers them, and each request in a batch as if sent alone.
BATCH_APIS = frozenset({"batches", "files"})

_NOT_FOUND = {"detail": "Not Found"}  # what vLLM (FastAPI) answers for a route it does not have
class SimulatorApp:
    """The simulator's state (seed, counters, settings) and its request handler."""

    def __init__(self, settings: SimSettings, models: list[str] | None = None):
        from ..models import MODELS

        self.settings = settings
        self.models = models or list(MODELS.values())
        self._seen: Counter[str] = Counter()  # how often each exact request came: a retry draws anew
        self.served: Counter[str] = Counter()  # answers per provider API, for tests and the log
        self.faults: Counter[str] = Counter()  # retryable errors sent, per provider and fault name
        self.cache = PromptCache()  # prefixes seen (implicit caching) and Gemini's explicit caches
        self.desks: dict[str, Any] = {}  # provider -> its batch desk (files and batches)

    def rng_for(self, method: str, path: str, query: str, raw: bytes) -> tuple[random.Random, int]:
        """The request's own seeded generator: seed, request and how many times it came before."""
        key = hashlib.sha256(b"\n".join([method.encode(), path.encode(), query.encode(), raw])).hexdigest()
        n = self._seen[key]
        self._seen[key] += 1
        return random.Random(f"{self.settings.seed}:{key}:{n}"), n

    async def models_list(self, scope: dict, receive: Any, send: Any) -> None:
        data = [{"id": m, "object": "model", "created": 1767225600, "owned_by": "llmkit-simulate"}
                for m in self.models]
        await _send_json(send, 200, {"object": "list", "data": data})

    async def not_found(self, scope: dict, receive: Any, send: Any) -> None:
        await _read(receive)
        if self.settings.profile == "chat-completions-only":
            await _send_json(send, 404, _NOT_FOUND)
            return
        provider = providers.for_path(scope["path"])
        message = f"llmkit simulate: {scope['method']} {scope['path']} is not an endpoint the simulator answers."
        body = provider.error_body(404, message) if provider else {
            "error": {"message": message, "type": "invalid_request_error", "param": None, "code": "unknown_url"}}
        await _send_json(send, 404, body)

    async def provider_api(self, scope: dict, receive: Any, send: Any) -> None:
        path, method = scope["path"], scope["method"]
        provider = providers.for_path(path)
        raw = await _read(receive)
        query_text = scope.get("query_string", b"").decode("latin-1")
        from urllib.parse import parse_qsl

        query = dict(parse_qsl(query_text))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if provider is None or provider.api_of(path) not in SPOKEN | BATCH_APIS:
            await self.not_found(scope, _done, send)
            return
        if self.settings.profile == "full" and not provider.has_key(headers, query):
            status, message = provider.no_key
            code = {"openai": None, "anthropic": None, "gemini": "PERMISSION_DENIED"}[provider.name]
            await _send_json(send, status, provider.error_body(status, message, code=code),
                             provider.error_headers(status))
            return
        if provider.api_of(path) in BATCH_APIS:
            await self._batch(provider, scope, raw, query, headers, send)
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            await _send_json(send, 400, provider.error_body(400, "We could not parse the JSON body of your "
                                                            "request."), provider.error_headers(400))
            return
        rng, n = self.rng_for(method, path, query_text, raw)
        sreq = ScriptedRequest(provider.name, provider.api_of(path), path, body,
                               provider.wants_stream(path, query, body), rng.randrange(10**9), method=method)
        t0 = asyncio.get_running_loop().time()
        fault = fault_for(sreq, self.settings, rng) if sreq.api not in ("count_tokens", "caches") else None
        if fault is not None:
            if self.settings.speed > 0:
                await asyncio.sleep(fault.delay_ms / 1000 / self.settings.speed)
            status, fheaders, fbody = provider.fault_response(fault.name, retry_after=fault.retry_after)
            if status == 429:
                fheaders.setdefault("retry-after-ms", f"{fault.retry_after * 1000:g}")
            fheaders["x-llmkit-simulated"] = f"fault {fault.name}"
            self.faults[f"{provider.name} {fault.name}"] += 1
            await _send_json(send, status, fbody, fheaders)
            return
        try:
            response = render(sreq, self._reply(sreq, rng), query)
        except (ScriptedReplyRejected, ConfigError) as exc:  # say why, in the provider's shape, without retries
            await _send_json(send, 400, provider.error_body(400, f"llmkit simulate: {exc}"))
            return
        if sreq.api == "caches" and method == "POST" and response.status == 200:
            self.cache.created(response.body)
        self.served[f"{provider.name} {sreq.api}"] += 1
        response.headers["x-llmkit-simulated"] = f"seed {self.settings.seed} request {n}"
        request = RecordedRequest(provider.name, method, path, query_text, body)
        watched = _DisconnectAwareSend(send, receive)
        try:
            await serve_response(watched, request, None, response, None, self.settings.speed, t0)
        except ClientGone:  # the client hung up mid-answer: nothing left to send
            pass
        finally:
            watched.stop()


    async def _batch(self, provider: Any, scope: dict, raw: bytes, query: dict[str, str],
                     headers: dict[str, str], send: Any) -> None:
        """A batch API call (lesson 11), answered by the provider's desk on the wall clock."""
        import time

        from ..replay.canonical import parse_body

        path, method = scope["path"], scope["method"]
        if provider.name not in self.desks:
            def inner(api_path: str, body: dict) -> tuple[int, Any]:
                rng, _ = self.rng_for("POST", api_path, "", json.dumps(body, sort_keys=True).encode())
                sreq = ScriptedRequest(provider.name, provider.api_of(api_path), api_path, body, False,
                                       rng.randrange(10**9))
                try:
                    response = render(sreq, self._reply(sreq, rng), {})
                except (ScriptedReplyRejected, ConfigError) as exc:
                    return 400, provider.error_body(400, f"llmkit simulate: {exc}")
                self.served[f"{provider.name} {sreq.api} (batch)"] += 1
                return response.status, response.body

            self.desks[provider.name] = provider.batch_desk(inner, clock=time.time, seed=str(self.settings.seed))
        try:
            body = parse_body(raw, content_type=headers.get("content-type"))
        except ValueError as exc:
            await _send_json(send, 400, provider.error_body(400, f"llmkit simulate: {exc}"))
            return
        answer = self.desks[provider.name].handle(method, path, query, body)
        self.served[f"{provider.name} {provider.api_of(path)}"] += 1
        response = answer.response(t_ms=0)
        payload = provider.localize(response.body_bytes(), f"http://{headers.get('host', '')}")
        await send({"type": "http.response.start", "status": response.status,
                    "headers": [(b"content-type", answer.content_type.encode()),
                                (b"content-length", str(len(payload)).encode()),
                                (b"x-llmkit-simulated", f"seed {self.settings.seed}".encode())]})
        await send({"type": "http.response.body", "body": payload})

    def _reply(self, sreq: ScriptedRequest, rng: random.Random) -> Reply:
        """The seeded answer with its prompt-cache usage, or the answer to a ``cachedContents`` call."""
        if sreq.api != "caches":
            return self.cache.apply(sreq, answer(sreq, self.settings, rng))
        if sreq.method == "POST":  # the routes let through POST .../cachedContents and DELETE .../cachedContents/{id}
            return self.cache.create(sreq)
        return self.cache.delete(sreq.path)


async def _read(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _done() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


class _Endpoint:
    """A raw ASGI endpoint (Starlette routes it; the handler writes the response itself)."""

    def __init__(self, handler: Any):
        self.handler = handler

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await self.handler(scope, receive, send)


def create_app(settings: SimSettings | None = None, models: list[str] | None = None) -> Any:
    """The simulator as a Starlette app; ``app.state.simulator`` is its :class:`SimulatorApp`."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    sim = SimulatorApp(settings or SimSettings(), models)
    api = _Endpoint(sim.provider_api)
    routes = [Route("/v1/chat/completions", api, methods=["POST"]),
              Route("/v1/models", _Endpoint(sim.models_list), methods=["GET"])]
    if sim.settings.profile == "full":
        routes += [Route(path, api, methods=["POST"]) for path in
                   ("/v1/responses", "/v1/responses/input_tokens", "/v1/messages", "/v1/messages/count_tokens",
                    "/{version}/models/{target:path}", "/{version}/cachedContents")]
        routes.append(Route("/{version}/cachedContents/{cache_id}", api, methods=["DELETE"]))
        # the batch APIs (lesson 11): OpenAI Files + Batch, Anthropic Message Batches, Gemini batch mode
        routes += [Route("/v1/files", api, methods=["POST"]), Route("/v1/files/{rest:path}", api, methods=["GET"]),
                   Route("/v1/batches", api, methods=["POST"]), Route("/v1/messages/batches", api, methods=["POST"]),
                   Route("/{version}/batches/{rest:path}", api, methods=["GET", "POST"]),
                   Route("/v1/messages/batches/{rest:path}", api, methods=["GET", "POST"])]
    routes.append(Route("/{path:path}", _Endpoint(sim.not_found),
                        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]))
    app = Starlette(routes=routes)
    app.state.simulator = sim
    return app
