"""A local HTTP server that speaks the subset of the OpenAI REST API the kit uses, backed by an `Engine`.

Routes live under `/v1` (models, files, fine-tuning jobs with events and checkpoints, chat completions, batches);
the Azure OpenAI, Together, Fireworks and Anthropic dialects are mounted beside them (kit/sim/dialects/);
`GET /slkit/stats` reports request statistics. Objects and errors are shaped like OpenAI's so the official SDK
parses them. Every API request passes one gate first (`SimApp`): request id, api key, fault injection and
statistics — so a faulted request never reaches a route and never changes stored state.

`LocalServer` runs the app in a daemon thread on 127.0.0.1 (tests, the `sim` provider); `serve` runs it in the
foreground (`slkit serve`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Message as AsgiMessage
from starlette.types import Receive, Scope, Send

from kit.sim.dialects import DIALECT_PREFIXES, dialect_routes
from kit.sim.engine import ChatRequest, Engine, EngineError, ModelInfo
from kit.sim.faults import FaultConfig, FaultDecision, FaultInjector, FaultKind
from kit.sim.jobs import (
    MESSAGE_ROLES,
    MIN_TRAINING_EXAMPLES,
    TERMINAL_BATCH_STATUSES,
    BatchRunner,
    JobRunner,
    JobTiming,
    TrainingFileError,
    make_event,
    now,
    parse_training_file,
)
from kit.sim.store import Obj, Store, new_id, public
from kit.tokens import count_messages, count_text

__all__ = ["ApiError", "FaultConfig", "JobTiming", "LocalServer", "StatsSnapshot", "chat_completion", "create_app",
           "serve"]

log = logging.getLogger(__name__)

API_PREFIX = "/v1"
STATS_PATH = "/slkit/stats"
LOCALHOST = "127.0.0.1"
DEFAULT_SERVE_PORT = 8765
ORGANIZATION_ID = "org-slkit"
CHAT_ENDPOINT = "/v1/chat/completions"
BATCH_COMPLETION_WINDOW = "24h"
BATCH_WINDOW_S = 24 * 3600
FILE_PURPOSES = frozenset({"fine-tune", "batch"})
MAX_SUFFIX_CHARS = 64
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_SEED = 2**31 - 1
MAX_CHAT_N = 128
MAX_TEMPERATURE = 2.0
DEFAULT_JOBS_LIMIT = 20
DEFAULT_EVENTS_LIMIT = 20
DEFAULT_CHECKPOINTS_LIMIT = 10
DEFAULT_FILES_LIMIT = 10_000
MAX_PAGE_LIMIT = 100
MAX_FILES_PAGE_LIMIT = 10_000
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0
GRACEFUL_SHUTDOWN_S = 2
DROP_SETTLE_TICKS = 3
HYPERPARAMETER_RULES: dict[str, tuple[type, float, float]] = {
    "n_epochs": (int, 1, 50),
    "batch_size": (int, 1, 256),
    "learning_rate_multiplier": (float, 1e-6, 10.0),
}
CHAT_ACCEPTED_IGNORED = frozenset({
    "top_p", "stop", "user", "frequency_penalty", "presence_penalty", "logit_bias", "response_format", "store",
    "metadata", "service_tier", "stream_options", "logprobs", "top_logprobs", "parallel_tool_calls",
    "reasoning_effort", "prompt_cache_key", "safety_identifier", "verbosity", "modalities",
})
CHAT_FIELDS = frozenset({"model", "messages", "n", "temperature", "max_tokens", "max_completion_tokens", "seed",
                         "stream"}) | CHAT_ACCEPTED_IGNORED
JOB_FIELDS = frozenset({"model", "training_file", "validation_file", "suffix", "seed", "metadata", "method",
                        "hyperparameters", "integrations"})
BATCH_FIELDS = frozenset({"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"})
_METADATA_QUERY = re.compile(r"^metadata\[(.*)\]$")


# errors ----------------------------------------------------------------------------------------------------------


def error_type(status: int) -> str:
    """OpenAI's `error.type` for an HTTP status."""
    if status == 429:
        return "requests"
    return "server_error" if status >= 500 else "invalid_request_error"


class ApiError(Exception):
    """An OpenAI-shaped error response: `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> Obj:
        return {"error": {"message": str(self), "type": error_type(self.status), "param": self.param,
                          "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def not_found(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(404, message, param=param, code=code)


def from_engine_error(err: EngineError) -> ApiError:
    return ApiError(err.status, str(err), param=err.param, code=err.code)


# statistics ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatsSnapshot:
    """Request statistics of one server: API requests only (`/v1/...`)."""

    requests_total: int = 0
    by_route: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)

    @property
    def faults_total(self) -> int:
        return sum(self.faults.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "faults_total": self.faults_total}


class RequestStats:
    """Thread-safe counters; `snapshot()` copies them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._routes: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()

    def request(self, route: str) -> None:
        with self._lock:
            self._total += 1
            self._routes[route] += 1

    def status(self, status: int) -> None:
        with self._lock:
            self._statuses[str(status)] += 1

    def fault(self, kind: FaultKind) -> None:
        with self._lock:
            self._faults[kind.value] += 1

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            return StatsSnapshot(self._total, dict(self._routes), dict(self._statuses), dict(self._faults))


# shared state ----------------------------------------------------------------------------------------------------


@dataclass
class SimState:
    """Everything the routes share; one per app."""

    engine: Engine
    store: Store
    faults: FaultInjector
    api_key: str | None
    stats: RequestStats
    jobs: JobRunner
    batches: BatchRunner


@dataclass(frozen=True)
class Call:
    """One parsed API request as a route handler sees it."""

    path: dict[str, str]
    query: QueryParams
    body: Obj


def _state(request: Request) -> SimState:
    state: SimState = request.app.state.sim
    return state


# parameter checks ------------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _reject_unknown(body: Obj, allowed: frozenset[str]) -> None:
    for key in body:
        if key not in allowed:
            raise bad_request(f"Unrecognized request argument supplied: {key}", key, "unknown_parameter")


def _required_str(body: Obj, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise bad_request(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
    return value


def _optional_int(body: Obj, name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_int(value) or not low <= value <= high:
        raise bad_request(f"Invalid '{name}': expected an integer between {low} and {high}.", name,
                          "invalid_value")
    return int(value)


def _metadata(value: Any, param: str = "metadata") -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_METADATA_PAIRS:
        raise bad_request(f"Invalid '{param}': expected at most {MAX_METADATA_PAIRS} key-value pairs.", param)
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > MAX_METADATA_KEY_CHARS or len(item) > MAX_METADATA_VALUE_CHARS:
            raise bad_request(f"Invalid '{param}': keys are strings of at most {MAX_METADATA_KEY_CHARS} characters "
                              f"and values strings of at most {MAX_METADATA_VALUE_CHARS}.", param)
    return dict(value)


def _query_int(query: QueryParams, name: str, default: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"Invalid '{name}': expected an integer.", name) from None
    if not 1 <= value <= high:
        raise bad_request(f"Invalid '{name}': expected an integer between 1 and {high}.", name)
    return value


def _page(items: list[Obj], query: QueryParams, default_limit: int, max_limit: int = MAX_PAGE_LIMIT) -> Obj:
    """A cursor page over `items` (already in API order), honouring `after` and `limit`."""
    limit = _query_int(query, "limit", default_limit, max_limit)
    after = query.get("after")
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    data = [public(item) for item in items[:limit]]
    return {"object": "list", "data": data, "has_more": len(items) > limit,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}


# models ----------------------------------------------------------------------------------------------------------


def _model_object(info: ModelInfo) -> Obj:
    return {"id": info.id, "object": "model", "created": info.created, "owned_by": info.owned_by}


def list_models(state: SimState, call: Call) -> Obj:
    return {"object": "list", "data": [_model_object(info) for info in state.engine.list_models()]}


def _model_missing(model: str, param: str | None = "model") -> ApiError:
    return not_found(f"The model `{model}` does not exist or you do not have access to it.", param,
                     "model_not_found")


def get_model(state: SimState, call: Call) -> Obj:
    model_id = call.path["model_id"]
    if not state.engine.has_model(model_id):
        raise _model_missing(model_id, None)
    listed = {info.id: info for info in state.engine.list_models()}
    return _model_object(listed.get(model_id, ModelInfo(id=model_id)))


# files -----------------------------------------------------------------------------------------------------------


def _check_batch_input(data: bytes) -> None:
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            raise bad_request(f"Invalid file format for Batch API: line {number} is not a JSON object.", "file",
                              "invalid_file_format")


def _check_upload(data: bytes, purpose: Any) -> str:
    if purpose not in FILE_PURPOSES:
        raise bad_request(f"Invalid purpose {purpose!r}: the simulated lab accepts {sorted(FILE_PURPOSES)}.",
                          "purpose", "invalid_value")
    if purpose == "fine-tune":
        try:
            parse_training_file(data)
        except TrainingFileError as err:
            raise bad_request(f"Invalid file format for Fine-Tuning API: {err}.", "file",
                              "invalid_file_format") from None
    else:
        _check_batch_input(data)
    return str(purpose)


def create_file(state: SimState, data: bytes, filename: str, purpose: Any) -> Obj:
    checked = _check_upload(data, purpose)
    return public(state.store.create_file(data, filename, checked))


def _file(state: SimState, file_id: str) -> Obj:
    found = state.store.files.get(file_id)
    if found is None:
        raise not_found(f"No such File object: {file_id}", "id")
    return found


def list_files(state: SimState, call: Call) -> Obj:
    purpose = call.query.get("purpose")
    files = [f for f in state.store.files.all() if purpose is None or f.get("purpose") == purpose]
    if call.query.get("order", "desc") != "asc":
        files.reverse()
    return _page(files, call.query, DEFAULT_FILES_LIMIT, MAX_FILES_PAGE_LIMIT)


def get_file(state: SimState, call: Call) -> Obj:
    return public(_file(state, call.path["file_id"]))


def file_content(state: SimState, call: Call) -> Response:
    file_id = call.path["file_id"]
    data = state.store.file_bytes(file_id)
    if data is None:
        raise not_found(f"No such File object: {file_id}", "id")
    return Response(data, media_type="application/octet-stream")


def delete_file(state: SimState, call: Call) -> Obj:
    file_id = call.path["file_id"]
    if not state.store.delete_file(file_id):
        raise not_found(f"No such File object: {file_id}", "id")
    return {"id": file_id, "object": "file", "deleted": True}


# fine-tuning jobs ------------------------------------------------------------------------------------------------


def _hyperparameter(name: str, value: Any) -> Any:
    kind, low, high = HYPERPARAMETER_RULES[name]
    if value is None or value == "auto":
        return "auto"
    valid = _is_int(value) if kind is int else _is_number(value)
    if not valid or not low <= value <= high:
        raise bad_request(f"Invalid hyperparameter {name}={value!r}: expected 'auto' or a number in "
                          f"[{low:g}, {high:g}].", f"hyperparameters.{name}", "invalid_value")
    return kind(value)


def _requested_hyperparameters(body: Obj) -> Obj:
    method, legacy = body.get("method"), body.get("hyperparameters")
    if method is not None:
        if not isinstance(method, dict) or method.get("type") != "supervised":
            raise bad_request("The simulated lab supports only method.type 'supervised'.", "method.type",
                              "invalid_value")
        if legacy:
            raise bad_request("Pass hyperparameters in method.supervised, not both there and top-level.",
                              "hyperparameters")
        supervised = method.get("supervised") or {}
        return (supervised.get("hyperparameters") if isinstance(supervised, dict) else None) or {}
    return legacy or {}


def _hyperparameters(body: Obj) -> Obj:
    requested = _requested_hyperparameters(body)
    if not isinstance(requested, dict):
        raise bad_request("hyperparameters must be an object.", "hyperparameters")
    _reject_unknown(requested, frozenset(HYPERPARAMETER_RULES))
    return {name: _hyperparameter(name, requested.get(name)) for name in HYPERPARAMETER_RULES}


def _training_examples(state: SimState, file_id: str, param: str) -> int:
    meta = state.store.files.get(file_id)
    data = state.store.file_bytes(file_id)
    if meta is None or data is None:
        raise bad_request(f"invalid {param}: {file_id} does not exist.", param, "invalid_file")
    if meta.get("purpose") != "fine-tune":
        raise bad_request(f"invalid {param}: {file_id} was not uploaded with purpose 'fine-tune'.", param,
                          "invalid_file_purpose")
    try:
        return len(parse_training_file(data))
    except TrainingFileError as err:
        raise bad_request(f"invalid {param}: {err}.", param, "invalid_file_format") from None


def _check_job_files(state: SimState, body: Obj) -> tuple[str, str | None]:
    training_file = _required_str(body, "training_file")
    examples = _training_examples(state, training_file, "training_file")
    if examples < MIN_TRAINING_EXAMPLES:
        raise bad_request(f"Training file {training_file} has {examples} example(s), but must have at least "
                          f"{MIN_TRAINING_EXAMPLES} examples.", "training_file", "invalid_n_examples")
    validation_file = body.get("validation_file")
    if validation_file is not None:
        _training_examples(state, str(validation_file), "validation_file")
    return training_file, validation_file


def _suffix(body: Obj) -> str | None:
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or len(suffix) > MAX_SUFFIX_CHARS):
        raise bad_request(f"Invalid 'suffix': expected a string of at most {MAX_SUFFIX_CHARS} characters.",
                          "suffix", "invalid_value")
    return suffix


def _new_job(state: SimState, body: Obj) -> Obj:
    _reject_unknown(body, JOB_FIELDS)
    model = _required_str(body, "model")
    if not state.engine.has_model(model):
        raise bad_request(f"Model {model} is not available for fine-tuning or does not exist.", "model",
                          "model_not_available")
    training_file, validation_file = _check_job_files(state, body)
    hyper = _hyperparameters(body)
    seed = _optional_int(body, "seed", 0, MAX_SEED)
    return {"id": new_id("ftjob-"), "object": "fine_tuning.job", "created_at": now(), "finished_at": None,
            "model": model, "fine_tuned_model": None, "organization_id": ORGANIZATION_ID, "result_files": [],
            "status": "validating_files", "validation_file": validation_file, "training_file": training_file,
            "hyperparameters": hyper, "trained_tokens": None, "error": None,
            "seed": seed if seed is not None else int(time.time_ns() % MAX_SEED), "estimated_finish": None,
            "integrations": [], "metadata": _metadata(body.get("metadata")),
            "method": {"type": "supervised", "supervised": {"hyperparameters": dict(hyper)}},
            "user_provided_suffix": _suffix(body)}


def create_job(state: SimState, call: Call) -> Obj:
    job = _new_job(state, call.body)
    state.store.jobs.put(job)
    state.store.add_event(job["id"], make_event(f"Created fine-tuning job: {job['id']}"))
    state.store.add_event(job["id"], make_event(f"Validating training file: {job['training_file']}"))
    state.jobs.submit(job["id"])
    return public(job)


def _job(state: SimState, job_id: str) -> Obj:
    found = state.store.jobs.get(job_id)
    if found is None:
        raise not_found(f"Could not find fine-tuning job: {job_id}", "fine_tuning_job_id", "fine_tune_not_found")
    return found


def _metadata_filter(query: QueryParams) -> dict[str, str] | None:
    """`metadata[k]=v` pairs (all must match); `metadata=null` selects jobs without metadata (empty dict)."""
    if query.get("metadata") == "null":
        return {}
    wanted = {m.group(1): value for key, value in query.multi_items() if (m := _METADATA_QUERY.match(key))}
    return wanted or None


def _matches(job: Obj, wanted: dict[str, str] | None) -> bool:
    if wanted is None:
        return True
    metadata = job.get("metadata") or {}
    if not wanted:
        return not metadata
    return all(metadata.get(key) == value for key, value in wanted.items())


def list_jobs(state: SimState, call: Call) -> Obj:
    wanted = _metadata_filter(call.query)
    jobs = [job for job in reversed(state.store.jobs.all()) if _matches(job, wanted)]
    return _page(jobs, call.query, DEFAULT_JOBS_LIMIT)


def get_job(state: SimState, call: Call) -> Obj:
    return public(_job(state, call.path["job_id"]))


def cancel_job(state: SimState, call: Call) -> Obj:
    job = _job(state, call.path["job_id"])
    cancelled = state.jobs.cancel(job["id"])
    if cancelled is None:
        current = _job(state, job["id"])
        raise bad_request(f"Job {job['id']} is already {current['status']} and cannot be cancelled.", None,
                          "invalid_job_status")
    return public(cancelled)


def list_job_events(state: SimState, call: Call) -> Obj:
    job = _job(state, call.path["job_id"])
    return _page(list(reversed(state.store.events(job["id"]))), call.query, DEFAULT_EVENTS_LIMIT)


def list_job_checkpoints(state: SimState, call: Call) -> Obj:
    job = _job(state, call.path["job_id"])
    checkpoints = list(reversed(state.store.checkpoints(job["id"])))
    return _page(checkpoints, call.query, DEFAULT_CHECKPOINTS_LIMIT)


# chat completions ------------------------------------------------------------------------------------------------


def _message_text(content: Any, where: str) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(part.get("text", "")) for part in content)
    raise bad_request(f"Invalid '{where}.content': expected a string or a list of text parts.",
                      f"{where}.content", "invalid_type")


def _chat_messages(body: Obj) -> list[Obj]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    checked: list[Obj] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or message.get("role") not in MESSAGE_ROLES:
            raise bad_request(f"Invalid '{where}': expected an object with a valid role.", where, "invalid_value")
        checked.append({**message, "content": _message_text(message.get("content"), where)})
    return checked


def _temperature(body: Obj) -> float:
    value = body.get("temperature", 1.0)
    if value is None:
        return 1.0
    if not _is_number(value) or not 0.0 <= value <= MAX_TEMPERATURE:
        raise bad_request(f"Invalid 'temperature': expected a number between 0 and {MAX_TEMPERATURE:g}.",
                          "temperature", "invalid_value")
    return float(value)


def _chat_request(engine: Engine, body: Obj) -> ChatRequest:
    _reject_unknown(body, CHAT_FIELDS)
    if body.get("stream"):
        raise bad_request("Streaming is not supported by the simulated lab.", "stream", "unsupported_value")
    model = _required_str(body, "model")
    messages = _chat_messages(body)
    if not engine.has_model(model):
        raise _model_missing(model)
    n = _optional_int(body, "n", 1, MAX_CHAT_N) or 1
    max_tokens = _optional_int(body, "max_completion_tokens", 1, 2**31) or _optional_int(body, "max_tokens", 1,
                                                                                          2**31)
    seed = _optional_int(body, "seed", -(2**63), 2**63 - 1)
    return ChatRequest(model=model, messages=messages, n=n, temperature=_temperature(body), max_tokens=max_tokens,
                       seed=seed)


def chat_completion(engine: Engine, body: Obj) -> Obj:
    """Answer one chat completion request body; raises ApiError."""
    request = _chat_request(engine, body)
    try:
        texts = engine.chat(request)
    except EngineError as err:
        raise from_engine_error(err) from None
    prompt_tokens = count_messages(request.messages)
    completion_tokens = sum(count_text(text) for text in texts)
    choices = [{"index": index, "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None, "finish_reason": "stop"} for index, text in enumerate(texts)]
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    return {"id": new_id("chatcmpl-"), "object": "chat.completion", "created": now(), "model": request.model,
            "choices": choices, "usage": usage, "system_fingerprint": "fp_slkit", "service_tier": "default"}


def chat_route(state: SimState, call: Call) -> Obj:
    return chat_completion(state.engine, call.body)


def batch_line_handler(engine: Engine) -> Callable[[str, Obj], tuple[int, Obj]]:
    """What a batch worker calls per input line: (url, body) -> (status, response body)."""

    def handle(url: str, body: Obj) -> tuple[int, Obj]:
        try:
            if url != CHAT_ENDPOINT:
                raise bad_request(f"The simulated lab's batches support only {CHAT_ENDPOINT}.", "url")
            return 200, chat_completion(engine, body)
        except ApiError as err:
            return err.status, err.body()

    return handle


# batches ---------------------------------------------------------------------------------------------------------


def _new_batch(state: SimState, body: Obj) -> Obj:
    _reject_unknown(body, BATCH_FIELDS)
    input_file_id = _required_str(body, "input_file_id")
    meta = state.store.files.get(input_file_id)
    if meta is None or meta.get("purpose") != "batch":
        raise bad_request(f"invalid input_file_id: {input_file_id} is not a file with purpose 'batch'.",
                          "input_file_id", "invalid_file")
    if body.get("endpoint") != CHAT_ENDPOINT:
        raise bad_request(f"The simulated lab's batches support only endpoint {CHAT_ENDPOINT}.", "endpoint",
                          "invalid_value")
    if body.get("completion_window") != BATCH_COMPLETION_WINDOW:
        raise bad_request(f"completion_window must be '{BATCH_COMPLETION_WINDOW}'.", "completion_window",
                          "invalid_value")
    created = now()
    return {"id": new_id("batch_"), "object": "batch", "endpoint": CHAT_ENDPOINT, "errors": None,
            "input_file_id": input_file_id, "completion_window": BATCH_COMPLETION_WINDOW, "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": created, "in_progress_at": None,
            "expires_at": created + BATCH_WINDOW_S, "finalizing_at": None, "completed_at": None,
            "failed_at": None, "expired_at": None, "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": _metadata(body.get("metadata")), "model": None, "usage": None}


def create_batch(state: SimState, call: Call) -> Obj:
    batch = state.store.batches.put(_new_batch(state, call.body))
    state.batches.submit(batch["id"])
    return public(batch)


def _batch(state: SimState, batch_id: str) -> Obj:
    found = state.store.batches.get(batch_id)
    if found is None:
        raise not_found(f"No such Batch object: {batch_id}", "batch_id")
    return found


def get_batch(state: SimState, call: Call) -> Obj:
    return public(_batch(state, call.path["batch_id"]))


def list_batches(state: SimState, call: Call) -> Obj:
    return _page(list(reversed(state.store.batches.all())), call.query, DEFAULT_JOBS_LIMIT)


def cancel_batch(state: SimState, call: Call) -> Obj:
    batch = _batch(state, call.path["batch_id"])
    if batch["status"] == "cancelling":
        return public(batch)
    cancelled = state.batches.cancel(batch["id"])
    if cancelled is None:
        status = _batch(state, batch["id"])["status"]
        reason = "finished" if status in TERMINAL_BATCH_STATUSES else status
        raise bad_request(f"Batch {batch['id']} is {reason} ({status}) and cannot be cancelled.", None,
                          "invalid_batch_status")
    return public(cancelled)


# HTTP plumbing ---------------------------------------------------------------------------------------------------

Handler = Callable[[SimState, Call], Any]


async def _json_body(request: Request) -> Obj:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_request("We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a synchronous handler: parse the request, run the handler in the thread pool, render JSON."""

    async def run(request: Request) -> Response:
        body = await _json_body(request) if request.method == "POST" else {}
        call = Call(dict(request.path_params), request.query_params, body)
        result = await run_in_threadpool(handler, _state(request), call)
        return result if isinstance(result, Response) else JSONResponse(result)

    return run


async def upload_file(request: Request) -> Response:
    try:
        form = await request.form()
    except Exception:
        raise bad_request("Expected a multipart/form-data body with 'file' and 'purpose'.") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise bad_request("Missing required parameter: 'file'.", "file", "missing_required_parameter")
    data = await upload.read()
    result = await run_in_threadpool(create_file, _state(request), data, upload.filename or "upload.jsonl",
                                     form.get("purpose"))
    return JSONResponse(result)


async def stats_route(request: Request) -> Response:
    return JSONResponse(_state(request).stats.snapshot().to_dict())


def _routes() -> list[BaseRoute]:
    v1 = API_PREFIX
    table: list[tuple[str, str, Handler]] = [
        ("GET", "/models", list_models), ("GET", "/models/{model_id}", get_model),
        ("GET", "/files", list_files), ("GET", "/files/{file_id}", get_file),
        ("GET", "/files/{file_id}/content", file_content), ("DELETE", "/files/{file_id}", delete_file),
        ("POST", "/fine_tuning/jobs", create_job), ("GET", "/fine_tuning/jobs", list_jobs),
        ("GET", "/fine_tuning/jobs/{job_id}", get_job), ("POST", "/fine_tuning/jobs/{job_id}/cancel", cancel_job),
        ("GET", "/fine_tuning/jobs/{job_id}/events", list_job_events),
        ("GET", "/fine_tuning/jobs/{job_id}/checkpoints", list_job_checkpoints),
        ("POST", "/chat/completions", chat_route),
        ("POST", "/batches", create_batch), ("GET", "/batches", list_batches),
        ("GET", "/batches/{batch_id}", get_batch), ("POST", "/batches/{batch_id}/cancel", cancel_batch),
    ]
    routes: list[BaseRoute] = [Route(v1 + path, endpoint(handler), methods=[method]) for method, path, handler in table]
    routes.append(Route(v1 + "/files", upload_file, methods=["POST"]))
    routes.append(Route(STATS_PATH, stats_route, methods=["GET"]))
    return routes


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = f"Invalid URL ({request.method} {request.url.path})" if exc.status_code in (404, 405) else exc.detail
    return ApiError(exc.status_code, message).response()


async def _internal_error(request: Request, exc: Exception) -> Response:
    return ApiError(500, "The simulated lab had an internal error while processing your request.").response()


# the gate: request ids, api key, faults, statistics ---------------------------------------------------------------


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _authorized(scope: Scope, api_key: str | None) -> bool:
    if api_key is None:
        return True
    auth = _header(scope, b"authorization") or ""
    presented = auth[len("Bearer "):] if auth.startswith("Bearer ") else (_header(scope, b"api-key") or "")
    return hmac.compare_digest(presented.encode(), api_key.encode())


def _fault_error(decision: FaultDecision) -> ApiError:
    if decision.kind is FaultKind.RATE_500:
        return ApiError(500, "The server had an error while processing your request (injected fault).",
                        code="server_error")
    retry_after = decision.retry_after_s or 0.0
    headers = {"retry-after": str(math.ceil(retry_after)), "retry-after-ms": str(math.ceil(retry_after * 1000))}
    limit = "requests per minute" if decision.kind is FaultKind.RPM_LIMIT else "requests"
    message = f"Rate limit reached for {limit} in the simulated lab. Please try again in {retry_after:.3g}s."
    return ApiError(429, message, code="rate_limit_exceeded", headers=headers)


async def _abort_connection(send: Send) -> None:
    """Close the TCP connection without a response (uvicorn's transport), so the client sees a connection error."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionAbortedError("dropped connection (injected fault)")
    transport.abort()
    for _ in range(DROP_SETTLE_TICKS):
        await asyncio.sleep(0)


async def _discard(message: AsgiMessage) -> None:
    return None


class SimApp(Starlette):
    """Starlette with an outermost gate that sees the server's own `send` (needed to drop connections)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
        elif str(scope.get("path", "")).startswith((API_PREFIX + "/", *DIALECT_PREFIXES)):
            await self._gate(scope, receive, send)
        else:
            await self._forward(scope, receive, send, {"x-request-id": new_id("req_")}, counted=False)

    def _route_key(self, scope: Scope) -> str:
        for route in self.router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL and isinstance(route, Route):
                return f"{scope['method']} {route.path}"
        return f"{scope['method']} (unmatched)"

    async def _gate(self, scope: Scope, receive: Receive, send: Send) -> None:
        sim: SimState = self.state.sim
        sim.stats.request(self._route_key(scope))
        headers = {"x-request-id": new_id("req_")}
        if not _authorized(scope, sim.api_key):
            error = ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
            await self._respond(scope, receive, send, error.response(), headers)
            return
        decision = sim.faults.decide()
        headers.update(decision.headers)
        if decision.delay_s > 0:
            await asyncio.sleep(decision.delay_s)
        if decision.kind is not FaultKind.NONE:
            sim.stats.fault(decision.kind)
        if decision.kind is FaultKind.DROP:
            await _abort_connection(send)
        elif decision.kind is FaultKind.LOST_RESPONSE:
            await self._forward(scope, receive, _discard, {})
            await _abort_connection(send)
        elif decision.rejects:
            await self._respond(scope, receive, send, _fault_error(decision).response(), headers)
        else:
            await self._forward(scope, receive, send, headers)

    async def _respond(self, scope: Scope, receive: Receive, send: Send, response: Response,
                       headers: dict[str, str]) -> None:
        response.headers.update(headers)
        self.state.sim.stats.status(response.status_code)
        await response(scope, receive, send)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str],
                       counted: bool = True) -> None:
        extra = [(key.encode("latin-1"), value.encode("latin-1")) for key, value in headers.items()]
        started = False

        async def send_with_headers(message: AsgiMessage) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if counted:
                    self.state.sim.stats.status(int(message["status"]))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await super().__call__(scope, receive, send_with_headers)
        except Exception:
            if not started:
                raise
            log.error("error while serving %s %s", scope["method"], scope["path"], exc_info=True)


# building and running --------------------------------------------------------------------------------------------


def _lifespan(state: SimState) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.jobs.start()
        state.batches.start()
        try:
            yield
        finally:
            await asyncio.to_thread(state.jobs.stop)
            await asyncio.to_thread(state.batches.stop)

    return lifespan


def create_app(engine: Engine, store: Store, *, faults: FaultConfig | None = None, timing: JobTiming | None = None,
               api_key: str | None = None) -> Starlette:
    """The ASGI app. Background workers start (and resume unfinished jobs and batches) with the app's lifespan."""
    timing = timing or JobTiming()
    injector = FaultInjector(faults)
    state = SimState(engine, store, injector, api_key, RequestStats(),
                     JobRunner(engine, store, timing, injector), BatchRunner(store, timing, batch_line_handler(engine)))
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        ApiError: _api_error, HTTPException: _http_error, Exception: _internal_error}
    app = SimApp(routes=_routes() + dialect_routes(), exception_handlers=handlers, lifespan=_lifespan(state))
    app.state.sim = state
    return app


def _uvicorn_config(app: Starlette, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(app, log_level="warning", access_log=False, log_config=None, lifespan="on", http="h11",
                          loop="asyncio", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, **options)


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket whose connections inherit TCP_NODELAY: without it, Nagle's algorithm meets the client's
    delayed ACK and every response waits ~40 ms (measured: 44 ms -> 0.45 ms per request)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


class LocalServer:
    """The app served by uvicorn in a daemon thread; `with LocalServer(engine, store) as server: server.base_url`."""

    def __init__(self, engine: Engine, store: Store, *, faults: FaultConfig | None = None,
                 timing: JobTiming | None = None, api_key: str | None = None, host: str = LOCALHOST,
                 port: int = 0, ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        self.app = create_app(engine, store, faults=faults, timing=timing, api_key=api_key)
        self.host = host
        self.port = port
        self.ready_timeout_s = ready_timeout_s
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    @property
    def stats(self) -> StatsSnapshot:
        state: SimState = self.app.state.sim
        return state.stats.snapshot()

    def start(self) -> LocalServer:
        """Bind (port 0 picks a free port), start serving, and wait until the server accepts requests."""
        if self._thread is not None:
            raise RuntimeError("this LocalServer is already running")
        sock = _bind(self.host, self.port)
        self.port = int(sock.getsockname()[1])
        self._server = uvicorn.Server(_uvicorn_config(self.app))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"slkit-server-{self.port}", daemon=True)
        self._thread.start()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while self._server is not None and not self._server.started:
            if self._thread is None or not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the local server on {self.host}:{self.port} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Shut down: stop accepting requests, let workers release their jobs, and join the thread."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None or thread is None:
            return
        state: SimState = self.app.state.sim
        state.jobs.request_stop()
        state.batches.request_stop()
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():
            server.force_exit = True
            thread.join(GRACEFUL_SHUTDOWN_S)
            log.warning("the local server on port %s did not stop cleanly", self.port)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve(engine: Engine, store: Store, host: str = LOCALHOST, port: int = DEFAULT_SERVE_PORT, *,
          faults: FaultConfig | None = None, timing: JobTiming | None = None, api_key: str | None = None) -> None:
    """Serve in the foreground until interrupted (Ctrl-C); used by `slkit serve`."""
    app = create_app(engine, store, faults=faults, timing=timing, api_key=api_key)
    uvicorn.Server(_uvicorn_config(app)).run(sockets=[_bind(host, port)])
