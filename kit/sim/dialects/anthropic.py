"""Anthropic's Messages API on the local server, under `/anthropic/v1/messages`, with Message Batches.

Shapes as Anthropic documents them: a request takes `model`, `max_tokens` (required), `messages` (user/assistant
turns, string or text-block content), an optional top-level `system`, `temperature` in [0, 1], `top_p`, `top_k`,
`stop_sequences`, `metadata` — and nothing else (no `n`, no `seed`). The answer is a `message` with text content
blocks and `usage {input_tokens, output_tokens}`. Errors are `{"type": "error", "error": {"type", "message"}}`.
Batches: `{requests: [{custom_id, params}]}` (custom ids of 1-64 letters, digits, `_`, `-`), processing_status
in_progress -> ended, `request_counts`, `results_url`; results are JSONL lines `{custom_id, result: {type:
succeeded | errored | canceled | expired, ...}}`. Batches here end after a short delay, computed on first read.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kit.sim.dialects.common import collection, rfc3339
from kit.sim.engine import ChatRequest, EngineError
from kit.sim.server import ApiError, Call, SimState, endpoint
from kit.sim.store import Obj, new_id
from kit.tokens import count_messages, count_text

PREFIX = "/anthropic/v1/messages"
BATCHES = "anthropic_batches"
BATCH_PROCESSING_S = 0.3
BATCH_WINDOW_S = 24 * 3600
MAX_BATCH_REQUESTS = 100_000
PARAMS = frozenset({"model", "max_tokens", "messages", "system", "temperature", "top_p", "top_k", "stop_sequences",
                    "metadata", "stream"})
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               529: "overloaded_error"}
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_lock = threading.Lock()


class AnthropicError(ApiError):
    def body(self) -> Obj:
        return {"type": "error", "error": {"type": ERROR_TYPES.get(self.status, "api_error"), "message": str(self)}}


def _invalid(message: str) -> AnthropicError:
    return AnthropicError(400, message)


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(b, dict) and b.get("type") == "text" for b in content):
        return "".join(str(b.get("text", "")) for b in content)
    raise _invalid(f"{where}: content must be a string or a list of text blocks")


def _messages(params: Obj) -> list[Obj]:
    turns = params.get("messages")
    if not isinstance(turns, list) or not turns:
        raise _invalid("messages: Field required")
    checked = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant"):
            raise _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        checked.append({"role": turn["role"], "content": _text(turn.get("content"), f"messages.{i}")})
    system = params.get("system")
    return ([{"role": "system", "content": _text(system, "system")}] if system else []) + checked


def _request(state: SimState, params: Obj) -> ChatRequest:
    unknown = sorted(set(params) - PARAMS)
    if unknown:
        raise _invalid(f"{unknown[0]}: Extra inputs are not permitted")
    if params.get("stream"):
        raise _invalid("stream: streaming is not supported by the simulated lab")
    max_tokens, temperature = params.get("max_tokens"), params.get("temperature", 1.0)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise _invalid("max_tokens: Field required (a positive integer)")
    if not isinstance(temperature, int | float) or not 0.0 <= temperature <= 1.0:
        raise _invalid("temperature: Input should be between 0 and 1")
    model = str(params.get("model") or "")
    if not state.engine.has_model(model):
        raise AnthropicError(404, f"model: {model}")
    return ChatRequest(model=model, messages=_messages(params), n=1, temperature=float(temperature),
                       max_tokens=max_tokens)


def message(state: SimState, params: Obj) -> Obj:
    request = _request(state, params)
    try:
        text = state.engine.chat(request)[0]
    except EngineError as err:
        raise AnthropicError(err.status, str(err)) from None
    return {"id": new_id("msg_"), "type": "message", "role": "assistant", "model": request.model,
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": count_messages(request.messages), "output_tokens": count_text(text),
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


def create_message(state: SimState, call: Call) -> Obj:
    return message(state, call.body)


# batches ---------------------------------------------------------------------------------------------------------


def _counts(batch: Obj) -> Obj:
    results = batch.get("_results")
    if results is None:
        return {"processing": len(batch["_requests"]), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    kinds = [r["result"]["type"] for r in results]
    return {"processing": 0, **{k: kinds.count(k) for k in ("succeeded", "errored", "canceled", "expired")}}


def _view(batch: Obj, base: str) -> Obj:
    ended = batch.get("_results") is not None
    return {"id": batch["id"], "type": "message_batch", "processing_status": "ended" if ended else batch["_status"],
            "request_counts": _counts(batch), "created_at": rfc3339(batch["_created"]),
            "expires_at": rfc3339(batch["_created"] + BATCH_WINDOW_S),
            "ended_at": rfc3339(batch["_ended"]) if ended else None, "archived_at": None,
            "cancel_initiated_at": rfc3339(batch["_cancelled"]) if batch.get("_cancelled") else None,
            "results_url": f"{base}{PREFIX}/batches/{batch['id']}/results" if ended else None}


def _result(state: SimState, entry: Obj, cancelled: bool) -> Obj:
    if cancelled:
        return {"custom_id": entry["custom_id"], "result": {"type": "canceled"}}
    try:
        return {"custom_id": entry["custom_id"], "result": {"type": "succeeded",
                                                            "message": message(state, entry["params"])}}
    except ApiError as err:
        body = AnthropicError(err.status, str(err)).body()
        return {"custom_id": entry["custom_id"], "result": {"type": "errored", "error": body}}


def _settle(state: SimState, batch_id: str) -> Obj:
    """Process a batch on first read after its delay (once; the lock keeps two readers from doing it twice)."""
    store = collection(state, BATCHES)
    with _lock:
        batch = store.get(batch_id)
        if batch is None:
            raise AnthropicError(404, f"message batch {batch_id} not found")
        due = batch.get("_cancelled") or time.time() - batch["_created"] >= BATCH_PROCESSING_S
        if batch.get("_results") is not None or not due:
            return batch
        cancelled = bool(batch.get("_cancelled"))
        results = [_result(state, entry, cancelled) for entry in batch["_requests"]]
        return store.update(batch_id, lambda b: {**b, "_results": results, "_ended": time.time()}) or batch


def _entries(body: Obj) -> list[Obj]:
    requests = body.get("requests")
    if not isinstance(requests, list) or not 0 < len(requests) <= MAX_BATCH_REQUESTS:
        raise _invalid(f"requests: between 1 and {MAX_BATCH_REQUESTS} requests")
    ids = [r.get("custom_id") if isinstance(r, dict) else None for r in requests]
    bad = next((i for i, c in enumerate(ids) if not isinstance(c, str) or not _CUSTOM_ID.match(c)), None)
    if bad is not None:
        raise _invalid(f"requests.{bad}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
    if len(set(ids)) != len(ids):
        raise _invalid("requests: custom_id values must be unique within a batch")
    return [{"custom_id": r["custom_id"], "params": r.get("params") or {}} for r in requests]


def create_batch(state: SimState, call: Call, base: str) -> Obj:
    batch = {"id": new_id("msgbatch_"), "_requests": _entries(call.body), "_created": time.time(),
             "_status": "in_progress"}
    collection(state, BATCHES).put(batch)
    return _view(batch, base)


def get_batch(state: SimState, call: Call, base: str) -> Obj:
    return _view(_settle(state, call.path["batch_id"]), base)


def list_batches(state: SimState, call: Call, base: str) -> Obj:
    batches = [_view(b, base) for b in reversed(collection(state, BATCHES).all())]
    limit = int(call.query.get("limit", "20"))
    data = batches[:limit]
    return {"data": data, "has_more": len(batches) > limit, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


def cancel_batch(state: SimState, call: Call, base: str) -> Obj:
    store = collection(state, BATCHES)
    store.update(call.path["batch_id"], lambda b: None if b.get("_results") is not None else
                 {**b, "_cancelled": time.time(), "_status": "canceling"})
    return get_batch(state, call, base)


def batch_results(state: SimState, call: Call, base: str) -> Response:
    batch = _settle(state, call.path["batch_id"])
    if batch.get("_results") is None:
        raise AnthropicError(400, f"message batch {batch['id']} is still processing: no results yet")
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in batch["_results"])
    return Response(lines.encode("utf-8"), media_type="application/binary")


def _with_base(handler: Any) -> Any:
    async def run(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return await endpoint(lambda state, call: handler(state, call, base))(request)
    return run


def routes() -> list[BaseRoute]:
    found: list[BaseRoute] = [Route(PREFIX, endpoint(create_message), methods=["POST"])]
    table: list[tuple[str, str, Any]] = [
        ("POST", "/batches", create_batch), ("GET", "/batches", list_batches),
        ("GET", "/batches/{batch_id}", get_batch), ("POST", "/batches/{batch_id}/cancel", cancel_batch),
        ("GET", "/batches/{batch_id}/results", batch_results),
    ]
    found += [Route(PREFIX + path, _with_base(handler), methods=[method]) for method, path, handler in table]
    return found
