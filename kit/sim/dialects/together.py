"""Together AI's fine-tuning dialect on the local server, under `/together/v1`.

Shapes as Together documents them: `POST /files/upload` (multipart purpose, file_name, file, file_type) answers a
file object with `Processed`, `FileType`, `LineCount`; `POST /fine-tunes` takes `model, training_file, n_epochs,
batch_size ("max" or a number), learning_rate (absolute), suffix, training_type {type: Lora|Full}, ...` — no
`metadata` — and answers a fine-tune object (`id` `ft-...`, `status` pending | queued | running | completed | error |
cancelled, `model_output_name`, `token_count`, `events`); lists answer `{"data": [...]}`. Chat is OpenAI's shape.
Jobs are the server's own fine-tuning jobs seen through this dialect.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kit.sim.dialects.common import form_of, rfc3339, sim_state, upload_bytes
from kit.sim.server import (
    Call,
    SimState,
    bad_request,
    cancel_job,
    chat_completion,
    create_file,
    create_job,
    endpoint,
    get_job,
    not_found,
)
from kit.sim.store import Obj, public

PREFIX = "/together/v1"
JOB_PREFIX, SERVER_JOB_PREFIX = "ft-", "ftjob-"
STATUS = {"validating_files": "pending", "queued": "queued", "running": "running", "succeeded": "completed",
          "failed": "error", "cancelled": "cancelled"}
FINE_TUNE_FIELDS = frozenset({"model", "training_file", "validation_file", "n_epochs", "n_checkpoints", "n_evals",
                              "batch_size", "learning_rate", "lr_scheduler", "warmup_ratio", "max_grad_norm",
                              "weight_decay", "suffix", "wandb_api_key", "wandb_project_name", "wandb_name",
                              "train_on_inputs", "training_type", "training_method", "from_checkpoint"})
MAX_SUFFIX = 64


def to_server_id(job_id: str) -> str:
    return SERVER_JOB_PREFIX + job_id.removeprefix(JOB_PREFIX)


def to_together_id(job_id: str) -> str:
    return JOB_PREFIX + job_id.removeprefix(SERVER_JOB_PREFIX)


def _file_view(meta: Obj) -> Obj:
    view = public(meta)
    return {"id": view["id"], "object": "file", "created_at": view["created_at"], "filename": view["filename"],
            "bytes": view["bytes"], "purpose": view["purpose"], "Processed": True, "FileType": "jsonl",
            "LineCount": int(meta.get("_lines", 0))}


async def upload(request: Request) -> Response:
    form = await form_of(request)
    data, uploaded_name = await upload_bytes(form)
    if form.get("purpose") != "fine-tune":
        raise bad_request("The simulated lab's Together dialect accepts purpose 'fine-tune'.", "purpose")
    filename = str(form.get("file_name") or uploaded_name)
    state = sim_state(request)
    created = await run_in_threadpool(create_file, state, data, filename, "fine-tune")
    lines = sum(1 for line in data.splitlines() if line.strip())
    state.store.files.update(created["id"], lambda m: {**m, "_lines": lines})
    return JSONResponse(_file_view({**created, "_lines": lines}))


def list_files(state: SimState, call: Call) -> Obj:
    files = [_file_view(f) for f in state.store.files.all() if f.get("purpose") == "fine-tune"]
    return {"object": "list", "data": files}


def get_file(state: SimState, call: Call) -> Obj:
    found = state.store.files.get(call.path["file_id"])
    if found is None:
        raise not_found(f"File {call.path['file_id']} not found.", "id")
    return _file_view(found)


def _events(state: SimState, job: Obj) -> list[Obj]:
    return [{"object": "fine-tune-event", "created_at": rfc3339(e.get("created_at", 0)), "level": e.get("level"),
             "message": e.get("message"), "type": "job_error" if e.get("level") == "error" else "job_start"}
            for e in state.store.events(job["id"])]


def _view(state: SimState, job: Obj) -> Obj:
    n_epochs = (job.get("hyperparameters") or {}).get("n_epochs")
    trained = job.get("trained_tokens")
    epochs = n_epochs if isinstance(n_epochs, int) else 1
    return {"id": to_together_id(job["id"]), "status": STATUS.get(job["status"], "running"), "model": job["model"],
            "training_file": job["training_file"], "suffix": job.get("user_provided_suffix"),
            "model_output_name": job.get("fine_tuned_model"), "n_epochs": epochs,
            "token_count": trained // epochs if isinstance(trained, int) else None,
            "created_at": rfc3339(job["created_at"]),
            "updated_at": rfc3339(job.get("finished_at") or job["created_at"]),
            "events": _events(state, job)}


def _server_body(body: Obj) -> Obj:
    unknown = sorted(set(body) - FINE_TUNE_FIELDS)
    if unknown:
        raise bad_request(f"Unknown parameter: {unknown[0]}", unknown[0], "invalid_request_error")
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or len(suffix) > MAX_SUFFIX):
        raise bad_request(f"suffix must be a string of at most {MAX_SUFFIX} characters", "suffix")
    batch = body.get("batch_size", "max")
    hyper = {"n_epochs": body.get("n_epochs", 1), "batch_size": "auto" if batch == "max" else batch}
    return {"model": body.get("model"), "training_file": body.get("training_file"), "suffix": suffix,
            "hyperparameters": hyper}


def create_fine_tune(state: SimState, call: Call) -> Obj:
    job = create_job(state, Call(call.path, call.query, _server_body(call.body)))
    return _view(state, state.store.jobs.get(job["id"]) or job)


def list_fine_tunes(state: SimState, call: Call) -> Obj:
    return {"data": [_view(state, j) for j in reversed(state.store.jobs.all())]}


def _job_call(call: Call) -> Call:
    return Call({"job_id": to_server_id(call.path["job_id"])}, QueryParams(""), {})


def get_fine_tune(state: SimState, call: Call) -> Obj:
    return _view(state, get_job(state, _job_call(call)))


def cancel_fine_tune(state: SimState, call: Call) -> Obj:
    return _view(state, cancel_job(state, _job_call(call)))


def fine_tune_events(state: SimState, call: Call) -> Obj:
    job = get_job(state, _job_call(call))
    return {"data": _events(state, job)}


def chat(state: SimState, call: Call) -> Obj:
    return chat_completion(state.engine, call.body)


def routes() -> list[BaseRoute]:
    table: list[tuple[str, str, Any]] = [
        ("GET", "/files", list_files), ("GET", "/files/{file_id}", get_file),
        ("POST", "/fine-tunes", create_fine_tune), ("GET", "/fine-tunes", list_fine_tunes),
        ("GET", "/fine-tunes/{job_id}", get_fine_tune), ("POST", "/fine-tunes/{job_id}/cancel", cancel_fine_tune),
        ("GET", "/fine-tunes/{job_id}/events", fine_tune_events), ("POST", "/chat/completions", chat),
    ]
    found: list[BaseRoute] = [Route(PREFIX + path, endpoint(handler), methods=[method])
                              for method, path, handler in table]
    found.append(Route(PREFIX + "/files/upload", upload, methods=["POST"]))
    return found
