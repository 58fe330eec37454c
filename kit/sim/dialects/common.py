"""Helpers shared by the dialect modules: per-store collections, multipart uploads, timestamps."""

from __future__ import annotations

import datetime as dt
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from kit.sim.server import ApiError, SimState, bad_request
from kit.sim.store import JsonCollection, Obj, Store

_collections: weakref.WeakKeyDictionary[Store, dict[str, JsonCollection]] = weakref.WeakKeyDictionary()
_guard = threading.Lock()


def collection(state: SimState, name: str) -> JsonCollection:
    """A dialect's own objects (deployments, datasets, ...) beside the server's files, jobs and batches."""
    with _guard:
        found = _collections.setdefault(state.store, {})
        if name not in found:
            directory = state.store.root / "dialects" / name
            directory.mkdir(parents=True, exist_ok=True)
            found[name] = JsonCollection(directory, threading.RLock())
        return found[name]


def sim_state(request: Request) -> SimState:
    state: SimState = request.app.state.sim
    return state


def rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def elapsed(obj: Obj, key: str = "_created") -> float:
    return time.time() - float(obj.get(key, 0.0))


async def form_of(request: Request) -> FormData:
    try:
        return await request.form()
    except Exception:
        raise bad_request("Expected a multipart/form-data body.") from None


async def upload_bytes(form: FormData, field: str = "file") -> tuple[bytes, str]:
    upload = form.get(field)
    if not isinstance(upload, UploadFile):
        raise bad_request(f"Missing required parameter: '{field}'.", field, "missing_required_parameter")
    return await upload.read(), upload.filename or "upload.jsonl"


def translate(error_type: type[ApiError], fn: Callable[[], Any]) -> Any:
    """Run `fn`, re-raising OpenAI-shaped errors in another dialect's error shape."""
    try:
        return fn()
    except ApiError as err:
        if isinstance(err, error_type):
            raise
        raise error_type(err.status, str(err), param=err.param, code=err.code, headers=err.headers) from None


Endpoint = Callable[[Request], Awaitable[Any]]


def json_endpoint(handler: Callable[[SimState, Any], Any]) -> Endpoint:
    """Like the server's `endpoint`, but parsing the JSON body of PUT requests too (Azure Resource Manager)."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, Response

    from kit.sim.server import Call, _json_body

    async def run(request: Request) -> Any:
        body = await _json_body(request) if request.method in ("POST", "PUT") else {}
        call = Call(dict(request.path_params), request.query_params, body)
        result = await run_in_threadpool(handler, sim_state(request), call)
        return result if isinstance(result, Response) else JSONResponse(result)

    return run


def paged(items: list[Obj], query: Any, default_limit: int = 10_000) -> Obj:
    """An OpenAI-style cursor page (`after`, `limit`, `has_more`) over already-rendered objects."""
    limit = int(query.get("limit") or default_limit)
    after = query.get("after")
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    data = items[:limit]
    return {"object": "list", "data": data, "has_more": len(items) > limit,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}
