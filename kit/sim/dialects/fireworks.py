"""Fireworks AI's dialect on the local server: the control plane under `/fireworks/v1/accounts/<account>/` and the
OpenAI-compatible inference endpoint under `/fireworks/inference/v1`.

Google-style resources as Fireworks documents them: datasets (`POST datasets` with {datasetId, dataset}, then
`POST datasets/<id>:upload` with the file; state UPLOADING -> READY), supervised fine-tuning jobs (`POST
supervisedFineTuningJobs?supervisedFineTuningJobId=<id>` with {dataset, baseModel, outputModel, epochs, ...};
state JOB_STATE_*; a taken id answers 409 ALREADY_EXISTS), deployments (`POST deployments?deploymentId=<id>` with
{baseModel}; state CREATING -> READY). Errors are `{"error": {"code": <http status>, "message", "status"}}`. A
LoRA model answers only through a ready deployment: `model: <model>#accounts/<a>/deployments/<id>`.
"""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kit.sim.dialects.common import collection, elapsed, form_of, rfc3339, sim_state, translate, upload_bytes
from kit.sim.server import ApiError, Call, SimState, cancel_job, chat_completion, create_file, create_job, endpoint
from kit.sim.store import Obj

PREFIX = "/fireworks/v1/accounts/{account}"
INFERENCE = "/fireworks/inference/v1"
DATASETS, JOBS, DEPLOYMENTS = "fireworks_datasets", "fireworks_jobs", "fireworks_deployments"
DEPLOY_PROVISIONING_S = 0.3
STATES = {"validating_files": "JOB_STATE_CREATING", "queued": "JOB_STATE_PENDING", "running": "JOB_STATE_RUNNING",
          "succeeded": "JOB_STATE_COMPLETED", "failed": "JOB_STATE_FAILED", "cancelled": "JOB_STATE_CANCELLED"}
JOB_FIELDS = frozenset({"dataset", "baseModel", "outputModel", "displayName", "epochs", "learningRate", "loraRank",
                        "batchSize", "maxContextLength", "evaluationDataset", "earlyStop", "warmStartFrom",
                        "jinjaTemplate", "wandbConfig", "region", "nodes", "isTurbo", "evalAutoCarveout"})
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_MODEL = re.compile(r"^accounts/([^/]+)/models/([^/#]+)$")


class FireworksError(ApiError):
    STATUS_NAMES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION",
                    429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}

    def body(self) -> Obj:
        return {"error": {"code": self.status, "message": str(self),
                          "status": self.STATUS_NAMES.get(self.status, "UNKNOWN")}}


def _error(status: int, message: str) -> FireworksError:
    return FireworksError(status, message)


def _valid_id(value: str | None, what: str) -> str:
    if not value or not _ID.match(value):
        raise _error(400, f"invalid {what} id {value!r}: use lower-case letters, digits and dashes (at most 63)")
    return value


def _name(call: Call, kind: str, short: str) -> str:
    return f"accounts/{call.path['account']}/{kind}/{short}"


# datasets --------------------------------------------------------------------------------------------------------


def _dataset_view(call: Call, found: Obj) -> Obj:
    return {"name": _name(call, "datasets", found["id"]), "displayName": found.get("displayName", found["id"]),
            "createTime": rfc3339(found["_created"]), "state": "READY" if found.get("_file") else "UPLOADING",
            "exampleCount": found.get("exampleCount"), "format": found.get("format", "CHAT"), "userUploaded": {}}


def create_dataset(state: SimState, call: Call) -> Obj:
    short = _valid_id(call.body.get("datasetId"), "dataset")
    store = collection(state, DATASETS)
    if store.get(short) is not None:
        raise _error(409, f"dataset {_name(call, 'datasets', short)} already exists")
    spec = call.body.get("dataset") or {}
    record = {"id": short, "_created": time.time(), "exampleCount": spec.get("exampleCount"),
              "format": spec.get("format", "CHAT"), "displayName": spec.get("displayName") or short}
    store.put(record)
    return _dataset_view(call, record)


def get_dataset(state: SimState, call: Call) -> Obj:
    found = collection(state, DATASETS).get(call.path["dataset"])
    if found is None:
        raise _error(404, f"dataset {_name(call, 'datasets', call.path['dataset'])} not found")
    return _dataset_view(call, found)


async def upload_dataset(request: Request) -> Response:
    state, path = sim_state(request), dict(request.path_params)
    store = collection(state, DATASETS)
    if store.get(path["dataset"]) is None:
        raise _error(404, f"dataset {path['dataset']} not found")
    data, filename = await upload_bytes(await form_of(request))
    created = await run_in_threadpool(translate, FireworksError,
                                      lambda: create_file(state, data, filename, "fine-tune"))
    store.update(path["dataset"], lambda d: {**d, "_file": created["id"]})
    return JSONResponse({"id": path["dataset"], "object": "file", "bytes": len(data), "created_at": int(time.time()),
                         "filename": filename, "purpose": "fine-tune"})


# supervised fine-tuning jobs -------------------------------------------------------------------------------------


def _server_job(state: SimState, record: Obj) -> Obj:
    return state.store.jobs.get(record["_job"]) or {}


def _job_view(state: SimState, call: Call, record: Obj) -> Obj:
    job = _server_job(state, record)
    error = job.get("error") or {}
    status = job.get("status", "validating_files")
    trained = job.get("trained_tokens")
    return {"name": _name(call, "supervisedFineTuningJobs", record["id"]), "displayName": record.get("displayName"),
            "createTime": rfc3339(record["_created"]), "state": STATES.get(status, "JOB_STATE_RUNNING"),
            "status": {"code": error.get("code") or "OK", "message": error.get("message") or ""},
            "dataset": record["dataset"], "baseModel": record["baseModel"], "outputModel": record["outputModel"],
            "epochs": record.get("epochs"), "jobProgress": {"inputTokens": trained} if trained else {}}


def engine_model(state: SimState, model: str) -> str | None:
    """The engine model behind a Fireworks model name: a base model, or a fine-tuned output model."""
    match = _MODEL.match(model)
    short = match.group(2) if match else model
    if state.engine.has_model(short):
        return short
    for record in collection(state, JOBS).all():
        if record.get("outputModel") == model:
            return _server_job(state, record).get("fine_tuned_model")
    return None


def _dataset_file(state: SimState, dataset: str) -> str:
    found = collection(state, DATASETS).get(dataset.rsplit("/", 1)[-1])
    if found is None or not found.get("_file"):
        raise _error(400, f"dataset {dataset} is not READY: upload its file first")
    return str(found["_file"])


def create_sft_job(state: SimState, call: Call) -> Obj:
    short = _valid_id(call.query.get("supervisedFineTuningJobId"), "supervised fine-tuning job")
    unknown = sorted(set(call.body) - JOB_FIELDS)
    if unknown:
        raise _error(400, f"unknown field {unknown[0]!r} in the supervised fine-tuning job")
    store = collection(state, JOBS)
    if store.get(short) is not None:
        raise _error(409, f"supervised fine-tuning job {_name(call, 'supervisedFineTuningJobs', short)} already exists")
    base = engine_model(state, str(call.body.get("baseModel") or ""))
    if base is None:
        raise _error(400, f"base model {call.body.get('baseModel')!r} cannot be fine-tuned")
    hyper = {"n_epochs": call.body.get("epochs", 1), "batch_size": call.body.get("batchSize", "auto")}
    body = {"model": base, "training_file": _dataset_file(state, str(call.body.get("dataset") or "")),
            "suffix": short, "hyperparameters": hyper}
    job = translate(FireworksError, lambda: create_job(state, Call({}, QueryParams(""), body)))
    record = {"id": short, "_job": job["id"], "_created": time.time(), "dataset": call.body.get("dataset"),
              "baseModel": call.body.get("baseModel"), "displayName": call.body.get("displayName") or short,
              "outputModel": call.body.get("outputModel") or _name(call, "models", short),
              "epochs": call.body.get("epochs")}
    store.put(record)
    return _job_view(state, call, record)


def _sft_record(state: SimState, call: Call) -> Obj:
    found = collection(state, JOBS).get(call.path["job"])
    if found is None:
        raise _error(404, f"supervised fine-tuning job {call.path['job']} not found")
    return found


def get_sft_job(state: SimState, call: Call) -> Obj:
    return _job_view(state, call, _sft_record(state, call))


def list_sft_jobs(state: SimState, call: Call) -> Obj:
    jobs = [_job_view(state, call, r) for r in reversed(collection(state, JOBS).all())]
    return {"supervisedFineTuningJobs": jobs, "nextPageToken": "", "totalSize": len(jobs)}


def cancel_sft_job(state: SimState, call: Call) -> Obj:
    record = _sft_record(state, call)
    translate(FireworksError, lambda: cancel_job(state, Call({"job_id": record["_job"]}, QueryParams(""), {})))
    return {}


# deployments -----------------------------------------------------------------------------------------------------


def _deployment_view(call: Call, found: Obj) -> Obj:
    ready = elapsed(found) >= DEPLOY_PROVISIONING_S
    return {"name": _name(call, "deployments", found["id"]), "displayName": found.get("displayName"),
            "baseModel": found["baseModel"], "createTime": rfc3339(found["_created"]),
            "state": "READY" if ready else "CREATING", "minReplicaCount": found.get("minReplicaCount", 0),
            "maxReplicaCount": found.get("maxReplicaCount", 1)}


def create_deployment(state: SimState, call: Call) -> Obj:
    short = _valid_id(call.query.get("deploymentId"), "deployment")
    store = collection(state, DEPLOYMENTS)
    if store.get(short) is not None:
        raise _error(409, f"deployment {_name(call, 'deployments', short)} already exists")
    if engine_model(state, str(call.body.get("baseModel") or "")) is None:
        raise _error(400, f"model {call.body.get('baseModel')!r} does not exist or has not finished training")
    record = {"id": short, "_created": time.time(), "baseModel": call.body.get("baseModel"),
              "displayName": call.body.get("displayName"), "minReplicaCount": call.body.get("minReplicaCount", 0),
              "maxReplicaCount": call.body.get("maxReplicaCount", 1)}
    store.put(record)
    return _deployment_view(call, record)


def get_deployment(state: SimState, call: Call) -> Obj:
    found = collection(state, DEPLOYMENTS).get(call.path["deployment"])
    if found is None:
        raise _error(404, f"deployment {call.path['deployment']} not found")
    return _deployment_view(call, found)


def delete_deployment(state: SimState, call: Call) -> Obj:
    if not collection(state, DEPLOYMENTS).delete(call.path["deployment"]):
        raise _error(404, f"deployment {call.path['deployment']} not found")
    return {}


# inference -------------------------------------------------------------------------------------------------------


def _inference_model(state: SimState, model: str) -> str:
    name, _, deployment = model.partition("#")
    if deployment:
        found = collection(state, DEPLOYMENTS).get(deployment.rsplit("/", 1)[-1])
        if found is None or found["baseModel"] != name or elapsed(found) < DEPLOY_PROVISIONING_S:
            raise ApiError(404, f"Model not found, inaccessible, and/or not deployed: {model}", code="NOT_FOUND")
    resolved = engine_model(state, name)
    is_base = resolved is not None and state.engine.has_model(name.rsplit("/", 1)[-1])
    if resolved is None or (not deployment and not is_base):
        raise ApiError(404, f"Model not found, inaccessible, and/or not deployed: {model}", code="NOT_FOUND")
    return resolved


def chat(state: SimState, call: Call) -> Obj:
    model = _inference_model(state, str(call.body.get("model") or ""))
    return chat_completion(state.engine, {**call.body, "model": model})


def routes() -> list[BaseRoute]:
    table: list[tuple[str, str, Any]] = [
        ("POST", "/datasets", create_dataset), ("GET", "/datasets/{dataset}", get_dataset),
        ("POST", "/supervisedFineTuningJobs", create_sft_job), ("GET", "/supervisedFineTuningJobs", list_sft_jobs),
        ("GET", "/supervisedFineTuningJobs/{job}", get_sft_job),
        ("POST", "/supervisedFineTuningJobs/{job}:cancel", cancel_sft_job),
        ("POST", "/deployments", create_deployment), ("GET", "/deployments/{deployment}", get_deployment),
        ("DELETE", "/deployments/{deployment}", delete_deployment),
    ]
    found: list[BaseRoute] = [Route(PREFIX + path, endpoint(lambda s, c, h=handler: translate(FireworksError,
                                                                                              lambda: h(s, c))),
                                    methods=[method]) for method, path, handler in table]
    found.append(Route(PREFIX + "/datasets/{dataset}:upload", upload_dataset, methods=["POST"]))
    found.append(Route(INFERENCE + "/chat/completions", endpoint(chat), methods=["POST"]))
    return found
