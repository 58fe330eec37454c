"""Fireworks AI: chat through its OpenAI-compatible inference endpoint, fine-tuning through its control-plane API.

Control-plane shapes (`https://api.fireworks.ai/v1/accounts/<account>/...`, Google-style resources):
- datasets: `POST datasets` ({datasetId, dataset: {userUploaded, exampleCount, format}}), `POST
  datasets/<id>:upload` (multipart file), `GET datasets/<id>` (state UPLOADING | READY);
- supervised fine-tuning jobs: `POST supervisedFineTuningJobs?supervisedFineTuningJobId=<id>` ({dataset,
  baseModel, outputModel, displayName, epochs, learningRate, loraRank}), `GET .../<id>`, `POST .../<id>:cancel`;
  states JOB_STATE_CREATING | PENDING | RUNNING | COMPLETED | FAILED | CANCELLED;
- deployments: LoRA models answer only from a dedicated deployment: `POST deployments?deploymentId=<id>`
  ({baseModel: the LoRA model}), `GET deployments/<id>` (state CREATING | READY), `DELETE deployments/<id>`; chat
  then names `<model>#accounts/<account>/deployments/<id>`.
Jobs carry no metadata, but the caller chooses their ids: the kit names each job after its tag, so looking a job
up after a crash is a GET by id, and a second create answers 409 instead of training twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx2

from kit.providers.base import (
    DEPLOY_CREATING,
    DEPLOY_FAILED,
    DEPLOY_READY,
    FILE_FAILED,
    FILE_PENDING,
    FILE_READY,
    DeploymentStatus,
    FileStatus,
    JobRequest,
    JobStatus,
)
from kit.providers.http import CONFLICT, JsonApi
from kit.providers.openai_dialect import OpenAIProvider, Settings

SERVERLESS_MODELS = "accounts/fireworks/models/"
ID_PREFIX = "sl-"
MAX_ID = 63
STATES = {"JOB_STATE_CREATING": "validating_files", "JOB_STATE_VALIDATING": "validating_files",
          "JOB_STATE_PENDING": "queued", "JOB_STATE_RUNNING": "running", "JOB_STATE_WRITING_RESULTS": "running",
          "JOB_STATE_COMPLETED": "succeeded", "JOB_STATE_FAILED": "failed", "JOB_STATE_CANCELLED": "cancelled",
          "JOB_STATE_CANCELLING": "running", "JOB_STATE_EXPIRED": "failed", "JOB_STATE_DELETING": "cancelled"}
DATASET_STATES = {"READY": FILE_READY, "UPLOADING": FILE_PENDING, "STATE_UNSPECIFIED": FILE_PENDING}
DEPLOYMENT_STATES = {"READY": DEPLOY_READY, "CREATING": DEPLOY_CREATING, "UPDATING": DEPLOY_CREATING}
_UNSAFE = re.compile(r"[^a-z0-9-]+")


def resource_id(text: str) -> str:
    """A Fireworks resource id: lower-case letters, digits and dashes, at most 63 characters."""
    return _UNSAFE.sub("-", text.lower()).strip("-")[:MAX_ID]


def job_id(tag: str) -> str:
    return resource_id(f"{ID_PREFIX}{tag}")


def short_id(name: str) -> str:
    """`accounts/a/supervisedFineTuningJobs/x` -> `x`."""
    return name.rsplit("/", 1)[-1]


def fireworks_job(job: dict[str, Any]) -> JobStatus:
    status = STATES.get(str(job.get("state")), "running")
    detail = job.get("status") or {}
    progress = job.get("jobProgress") or {}
    tokens = progress.get("inputTokens")
    return JobStatus(id=short_id(str(job["name"])), status=status, model=str(job.get("baseModel") or ""),
                     fine_tuned_model=job.get("outputModel") if status == "succeeded" else None,
                     trained_tokens=int(tokens) if tokens and status == "succeeded" else None,
                     error_code=str(detail.get("code")) if status == "failed" else None,
                     error_message=str(detail.get("message")) if status == "failed" else None)


class FireworksProvider(OpenAIProvider):
    kind = "fireworks"
    supports_batch = False
    needs_deployment = True

    def __init__(self, name: str, settings: Settings, *, control_url: str, inference_url: str, account: str,
                 api_key: str, learning_rate: float | None, lora_rank: int | None,
                 http_client: httpx2.Client | None = None, on_close: Callable[[], None] | None = None) -> None:
        super().__init__(name, settings, base_url=inference_url, api_key=api_key, http_client=http_client,
                         on_close=on_close)
        root = f"{control_url.rstrip('/')}/v1/accounts/{account}"
        self._api = JsonApi(name, root, {"Authorization": f"Bearer {api_key}"}, key_env=settings.key_env,
                            secrets=(api_key,), timeout_s=settings.timeout_s, max_attempts=settings.max_attempts,
                            governor=self.governor, http_client=http_client)
        self._account = account
        self._learning_rate, self._lora_rank = learning_rate, lora_rank

    def api_model(self, model: str) -> str:
        named = self.settings.model_names.get(model, model)
        return named if named.startswith("accounts/") else f"{SERVERLESS_MODELS}{named}"

    def _resource(self, kind: str, short: str) -> str:
        return f"accounts/{self._account}/{kind}/{short}"

    # --- datasets ---------------------------------------------------------------------------------------------

    def upload_training_file(self, content: bytes, filename: str) -> str:
        dataset = resource_id(filename.removesuffix(".jsonl"))
        examples = sum(1 for line in content.splitlines() if line.strip())
        body = {"datasetId": dataset, "dataset": {"userUploaded": {}, "exampleCount": str(examples),
                                                   "format": "CHAT"}}
        self._api.request("POST", "datasets", json=body, none_on=(CONFLICT,))
        self._api.request("POST", f"datasets/{dataset}:upload", files={"file": (filename, content)})
        return self._resource("datasets", dataset)

    def find_uploaded_file(self, filename: str) -> str | None:
        dataset = resource_id(filename.removesuffix(".jsonl"))
        found = self._api.get_or_none(f"datasets/{dataset}")
        return self._resource("datasets", dataset) if found and found.get("state") == "READY" else None

    def file_status(self, file_id: str) -> FileStatus:
        found = self._api.get_or_none(f"datasets/{short_id(file_id)}") or {}
        state = DATASET_STATES.get(str(found.get("state")), FILE_FAILED)
        return FileStatus(file_id, state, None if state != FILE_FAILED else f"dataset state {found.get('state')}")

    # --- supervised fine-tuning jobs --------------------------------------------------------------------------

    def _job_body(self, request: JobRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"dataset": request.training_file, "baseModel": self.api_model(request.model),
                                "outputModel": self._resource("models", job_id(request.tag)),
                                "displayName": request.suffix or job_id(request.tag)}
        if request.n_epochs != "auto":
            body["epochs"] = request.n_epochs
        if request.batch_size != "auto":
            body["batchSize"] = request.batch_size
        if self._learning_rate is not None:
            body["learningRate"] = self._learning_rate
        if self._lora_rank is not None:
            body["loraRank"] = self._lora_rank
        return body

    def find_jobs(self, request: JobRequest) -> list[JobStatus]:
        found = self._api.get_or_none(f"supervisedFineTuningJobs/{job_id(request.tag)}")
        return [fireworks_job(found)] if found else []

    def create_job(self, request: JobRequest) -> JobStatus:
        short = job_id(request.tag)
        created = self._api.request("POST", f"supervisedFineTuningJobs?supervisedFineTuningJobId={short}",
                                    json=self._job_body(request), retry=False, none_on=(CONFLICT,))
        return fireworks_job(created or self._api.request("GET", f"supervisedFineTuningJobs/{short}"))

    def retrieve_job(self, job_id_: str) -> JobStatus:
        return fireworks_job(self._api.request("GET", f"supervisedFineTuningJobs/{job_id_}"))

    def cancel_job(self, job_id_: str) -> JobStatus:
        self._api.request("POST", f"supervisedFineTuningJobs/{job_id_}:cancel", json={})
        return self.retrieve_job(job_id_)

    def job_events(self, job_id_: str) -> list[dict[str, Any]]:
        job = self._api.request("GET", f"supervisedFineTuningJobs/{job_id_}") or {}
        detail = job.get("status") or {}
        return [{"created_at": job.get("updateTime"), "level": "info", "message": f"{job.get('state')}: "
                 f"{detail.get('message') or detail.get('code') or ''}".strip(),
                 "data": job.get("jobProgress") or {}}]

    # --- deployments --------------------------------------------------------------------------------------------

    def _deployment_status(self, name: str, model: str, found: dict[str, Any]) -> DeploymentStatus:
        state = DEPLOYMENT_STATES.get(str(found.get("state")), DEPLOY_FAILED)
        inference = f"{model}#{self._resource('deployments', name)}"
        return DeploymentStatus(name, state, inference, None if state != DEPLOY_FAILED else str(found.get("state")))

    def deploy(self, model: str, name: str) -> DeploymentStatus:
        short = resource_id(name)
        body = {"baseModel": model, "displayName": name, "minReplicaCount": 0, "maxReplicaCount": 1}
        created = self._api.request("POST", f"deployments?deploymentId={short}", json=body, retry=False,
                                    none_on=(CONFLICT,))
        return self._deployment_status(short, model, created or self._api.request("GET", f"deployments/{short}"))

    def deployment(self, name: str) -> DeploymentStatus | None:
        found = self._api.get_or_none(f"deployments/{resource_id(name)}")
        return self._deployment_status(resource_id(name), str(found.get("baseModel")), found) if found else None

    def undeploy(self, name: str) -> None:
        self._api.request("DELETE", f"deployments/{resource_id(name)}", none_on=(404,))

    def close(self) -> None:
        self._api.close()
        super().close()
