"""Azure OpenAI on the local server: the data plane under `/openai` (every call needs `api-version`) and model
deployments as Azure Resource Manager resources under `/subscriptions/...`.

What differs from the OpenAI routes, as Azure documents it (api-version 2024-10-21):
- uploaded files are processed asynchronously: `pending`, then `processed`; a job on a pending file is refused;
- fine-tuning jobs take `model, training_file, validation_file, hyperparameters, suffix (<= 40), seed` — no
  `metadata`, no `method` — and report their `suffix`;
- chat goes to `/openai/deployments/<deployment>/chat/completions`: a base model is reached through a deployment
  of the same name (pre-deployed here), a fine-tuned model only once its deployment's `provisioningState` is
  `Succeeded`; otherwise 404 `DeploymentNotFound`;
- batch lines name `/chat/completions` and a deployment.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kit.sim.dialects.common import collection, elapsed, form_of, json_endpoint, paged, sim_state, upload_bytes
from kit.sim.server import (
    CHAT_ENDPOINT,
    ApiError,
    Call,
    SimState,
    bad_request,
    cancel_batch,
    cancel_job,
    chat_completion,
    create_batch,
    create_file,
    endpoint,
    file_content,
    get_batch,
    get_job,
    list_job_checkpoints,
    list_job_events,
    list_jobs,
    not_found,
)
from kit.sim.store import Obj, public

PREFIX = "/openai"
ARM_DEPLOYMENT = ("/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.CognitiveServices/"
                  "accounts/{account}/deployments/{name}")
AZURE_CHAT = "/chat/completions"
FILE_PROCESSING_S = 0.2
DEPLOY_PROVISIONING_S = 0.3
MAX_SUFFIX = 40
JOB_FIELDS = frozenset({"model", "training_file", "validation_file", "hyperparameters", "suffix", "seed",
                        "integrations"})
DEPLOYMENTS = "azure_deployments"
HIDDEN_JOB_FIELDS = ("metadata", "method")


def _api_version(call: Call) -> None:
    if not call.query.get("api-version"):
        raise ApiError(404, "Resource not found: the api-version query parameter is missing.", code="404")


def _checked(handler: Any) -> Any:
    def run(state: SimState, call: Call) -> Any:
        _api_version(call)
        return handler(state, call)
    return run


# files -----------------------------------------------------------------------------------------------------------


def _file_view(meta: Obj) -> Obj:
    ready = time.time() >= float(meta.get("_azure_ready_at", 0.0))
    return {**public(meta), "status": "processed" if ready else "pending"}


def _file_ready(state: SimState, file_id: str) -> bool:
    meta = state.store.files.get(file_id)
    return meta is not None and time.time() >= float(meta.get("_azure_ready_at", 0.0))


async def upload(request: Request) -> Response:
    if not request.query_params.get("api-version"):
        raise ApiError(404, "Resource not found: the api-version query parameter is missing.", code="404")
    form = await form_of(request)
    data, filename = await upload_bytes(form)
    state = sim_state(request)
    created = await run_in_threadpool(create_file, state, data, filename, form.get("purpose"))
    ready_at = time.time() + FILE_PROCESSING_S
    state.store.files.update(created["id"], lambda m: {**m, "_azure_ready_at": ready_at})
    return JSONResponse(_file_view({**created, "_azure_ready_at": ready_at}))


def list_files(state: SimState, call: Call) -> Obj:
    purpose = call.query.get("purpose")
    files = [_file_view(f) for f in reversed(state.store.files.all()) if purpose is None or f.get("purpose") == purpose]
    return paged(files, call.query)


def get_file(state: SimState, call: Call) -> Obj:
    found = state.store.files.get(call.path["file_id"])
    if found is None:
        raise not_found(f"File {call.path['file_id']} not found.", "id")
    return _file_view(found)


# fine-tuning jobs ------------------------------------------------------------------------------------------------


def _job_view(job: Obj) -> Obj:
    view = {k: v for k, v in job.items() if k not in HIDDEN_JOB_FIELDS}
    return {**view, "suffix": job.get("user_provided_suffix")}


def create_job(state: SimState, call: Call) -> Obj:
    unknown = sorted(set(call.body) - JOB_FIELDS)
    if unknown:
        raise bad_request(f"Unrecognized request argument supplied: {unknown[0]}", unknown[0], "unknown_parameter")
    suffix = call.body.get("suffix")
    if isinstance(suffix, str) and len(suffix) > MAX_SUFFIX:
        raise bad_request(f"The suffix can contain up to {MAX_SUFFIX} characters.", "suffix", "invalidPayload")
    training_file = str(call.body.get("training_file") or "")
    if state.store.files.get(training_file) is not None and not _file_ready(state, training_file):
        raise bad_request(f"The training file {training_file} has not been processed yet; wait until its status is "
                          "'processed'.", "training_file", "invalidPayload")
    from kit.sim.server import create_job as openai_create_job

    return _job_view(openai_create_job(state, call))


def list_azure_jobs(state: SimState, call: Call) -> Obj:
    query = QueryParams([(k, v) for k, v in call.query.multi_items() if not k.startswith("metadata")])
    page = list_jobs(state, Call(call.path, query, call.body))
    return {**page, "data": [_job_view(j) for j in page["data"]]}


def get_azure_job(state: SimState, call: Call) -> Obj:
    return _job_view(get_job(state, call))


def cancel_azure_job(state: SimState, call: Call) -> Obj:
    return _job_view(cancel_job(state, call))


# deployments (Azure Resource Manager) ----------------------------------------------------------------------------


def _deployment_view(found: Obj, call: Call) -> Obj:
    ready = elapsed(found) >= DEPLOY_PROVISIONING_S
    return {"id": ARM_DEPLOYMENT.format(**call.path), "type": "Microsoft.CognitiveServices/accounts/deployments",
            "name": found["id"], "sku": found["sku"],
            "properties": {"model": found["model"], "provisioningState": "Succeeded" if ready else "Creating"},
            "systemData": {"createdAt": found["createdAt"]}}


def _arm_error(status: int, code: str, message: str) -> ApiError:
    return ApiError(status, message, code=code)


def put_deployment(state: SimState, call: Call) -> Response:
    name = call.path["name"]
    model = ((call.body.get("properties") or {}).get("model") or {})
    sku = call.body.get("sku")
    if not isinstance(sku, dict) or not sku.get("name"):
        raise _arm_error(400, "InvalidResourceProperties", "The deployment needs sku.name (e.g. developertier).")
    if not state.engine.has_model(str(model.get("name") or "")):
        raise _arm_error(400, "DeploymentModelNotSupported", f"The model '{model.get('name')}' is not available "
                                                             "for deployment on this resource.")
    store = collection(state, DEPLOYMENTS)
    existing = store.get(name)
    record = {"id": name, "sku": sku, "model": model, "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "_created": existing["_created"] if existing and existing["model"] == model else time.time()}
    store.put(record)
    return JSONResponse(_deployment_view(record, call), status_code=200 if existing else 201)


def get_deployment(state: SimState, call: Call) -> Obj:
    found = collection(state, DEPLOYMENTS).get(call.path["name"])
    if found is None:
        raise _arm_error(404, "DeploymentNotFound", f"Deployment '{call.path['name']}' could not be found.")
    return _deployment_view(found, call)


def delete_deployment(state: SimState, call: Call) -> Response:
    deleted = collection(state, DEPLOYMENTS).delete(call.path["name"])
    return Response(status_code=200 if deleted else 204)


def deployed_model(state: SimState, deployment: str) -> str:
    """The engine model behind a deployment name; 404 DeploymentNotFound unless it is ready."""
    found = collection(state, DEPLOYMENTS).get(deployment)
    if found is not None and elapsed(found) >= DEPLOY_PROVISIONING_S:
        return str(found["model"].get("name"))
    if found is None and state.engine.has_model(deployment):
        return deployment  # base models are pre-deployed under their own name
    raise ApiError(404, "The API deployment for this resource does not exist. If you created the deployment within "
                        "the last 5 minutes, please wait a moment and try again.", code="DeploymentNotFound")


# chat and batches ------------------------------------------------------------------------------------------------


def chat(state: SimState, call: Call) -> Obj:
    model = deployed_model(state, call.path["deployment"])
    return chat_completion(state.engine, {**call.body, "model": model})


def _rewrite_line(state: SimState, line: str) -> str:
    record = json.loads(line)
    if isinstance(record, dict) and record.get("url") == AZURE_CHAT and isinstance(record.get("body"), dict):
        try:
            model = deployed_model(state, str(record["body"].get("model")))
        except ApiError:
            model = str(record["body"].get("model"))
        record = {**record, "url": CHAT_ENDPOINT, "body": {**record["body"], "model": model}}
    return json.dumps(record, ensure_ascii=False)


def create_azure_batch(state: SimState, call: Call) -> Obj:
    if call.body.get("endpoint") != AZURE_CHAT:
        raise bad_request(f"The batch endpoint must be {AZURE_CHAT}.", "endpoint", "invalid_value")
    source = state.store.file_bytes(str(call.body.get("input_file_id")))
    if source is None:
        raise bad_request("invalid input_file_id.", "input_file_id", "invalid_file")
    lines = [_rewrite_line(state, line) for line in source.decode("utf-8").splitlines() if line.strip()]
    copy = state.store.create_file(("\n".join(lines) + "\n").encode("utf-8"), "azure-batch-input.jsonl", "batch")
    body = {**call.body, "input_file_id": copy["id"], "endpoint": CHAT_ENDPOINT}
    return {**create_batch(state, Call(call.path, call.query, body)), "endpoint": AZURE_CHAT,
            "input_file_id": call.body.get("input_file_id")}


def get_azure_batch(state: SimState, call: Call) -> Obj:
    return {**get_batch(state, call), "endpoint": AZURE_CHAT}


def list_azure_batches(state: SimState, call: Call) -> Obj:
    from kit.sim.server import list_batches

    page = list_batches(state, call)
    return {**page, "data": [{**b, "endpoint": AZURE_CHAT} for b in page["data"]]}


def routes() -> list[BaseRoute]:
    table: list[tuple[str, str, Any]] = [
        ("GET", "/files", list_files), ("GET", "/files/{file_id}", get_file),
        ("GET", "/files/{file_id}/content", file_content),
        ("POST", "/fine_tuning/jobs", create_job), ("GET", "/fine_tuning/jobs", list_azure_jobs),
        ("GET", "/fine_tuning/jobs/{job_id}", get_azure_job),
        ("POST", "/fine_tuning/jobs/{job_id}/cancel", cancel_azure_job),
        ("GET", "/fine_tuning/jobs/{job_id}/events", list_job_events),
        ("GET", "/fine_tuning/jobs/{job_id}/checkpoints", list_job_checkpoints),
        ("POST", "/deployments/{deployment}/chat/completions", chat),
        ("POST", "/batches", create_azure_batch), ("GET", "/batches", list_azure_batches),
        ("GET", "/batches/{batch_id}", get_azure_batch), ("POST", "/batches/{batch_id}/cancel", cancel_batch),
    ]
    found: list[BaseRoute] = [Route(PREFIX + path, endpoint(_checked(handler)), methods=[method])
                              for method, path, handler in table]
    found.append(Route(PREFIX + "/files", upload, methods=["POST"]))
    found += [Route(ARM_DEPLOYMENT, json_endpoint(handler), methods=[method])
              for method, handler in (("PUT", put_deployment), ("GET", get_deployment),
                                      ("DELETE", delete_deployment))]
    return found
