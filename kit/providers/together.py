"""Together AI: chat through its OpenAI-compatible endpoint (the `openai` SDK), fine-tuning through its own API.

Fine-tuning shapes (Together REST v1): `POST /files/upload` (multipart: file, file_name, purpose, file_type),
`POST /fine-tunes` (model, training_file, n_epochs, batch_size, learning_rate, suffix, training_type LoRA),
`GET /fine-tunes` (`{"data": [...]}`), `GET /fine-tunes/{id}`, `POST /fine-tunes/{id}/cancel`,
`GET /fine-tunes/{id}/events`. Statuses: pending, queued, running, compressing, uploading, cancel_requested,
cancelled, error, completed. Jobs carry no metadata: the kit names the job's `suffix` after its tag and finds it
again by that suffix (it also appears in `model_output_name`). The learning rate is absolute, not a multiplier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2

from kit.providers.base import FILE_PENDING, FILE_READY, FileStatus, JobRequest, JobStatus
from kit.providers.http import JsonApi
from kit.providers.openai_dialect import OpenAIProvider, Settings

STATUS = {"pending": "validating_files", "queued": "queued", "running": "running", "compressing": "running",
          "uploading": "running", "cancel_requested": "running", "cancelled": "cancelled", "error": "failed",
          "completed": "succeeded", "user_error": "failed"}
SUFFIX_PREFIX = "sl-"


def job_suffix(tag: str) -> str:
    return f"{SUFFIX_PREFIX}{tag}"


def _error(job: dict[str, Any]) -> str | None:
    events = [e for e in job.get("events") or [] if e.get("level") == "error" or e.get("type") == "job_error"]
    return str(events[-1].get("message")) if events else (job.get("error") or None)


def together_job(job: dict[str, Any]) -> JobStatus:
    status = STATUS.get(str(job.get("status")), "running")
    failed = status == "failed"
    return JobStatus(id=str(job["id"]), status=status, model=str(job.get("model") or ""),
                     fine_tuned_model=job.get("model_output_name") if status == "succeeded" else None,
                     trained_tokens=_trained_tokens(job) if status == "succeeded" else None,
                     error_code="job_error" if failed else None, error_message=_error(job) if failed else None)


def _trained_tokens(job: dict[str, Any]) -> int | None:
    tokens = job.get("token_count")
    epochs = job.get("n_epochs") or 1
    return int(tokens) * int(epochs) if tokens else None


class TogetherProvider(OpenAIProvider):
    kind = "together"
    supports_batch = False

    def __init__(self, name: str, settings: Settings, *, base_url: str, api_key: str, learning_rate: float | None,
                 lora_rank: int | None, http_client: httpx2.Client | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        super().__init__(name, settings, base_url=base_url, api_key=api_key, http_client=http_client,
                         on_close=on_close)
        self._api = JsonApi(name, base_url, {"Authorization": f"Bearer {api_key}"}, key_env=settings.key_env,
                            secrets=(api_key,), timeout_s=settings.timeout_s, max_attempts=settings.max_attempts,
                            governor=self.governor, http_client=http_client)
        self._learning_rate, self._lora_rank = learning_rate, lora_rank

    def upload_training_file(self, content: bytes, filename: str) -> str:
        form = {"purpose": "fine-tune", "file_name": filename, "file_type": "jsonl"}
        found = self._api.request("POST", "files/upload", data=form,
                                  files={"file": (filename, content, "application/jsonl")})
        return str(found["id"])

    def find_uploaded_file(self, filename: str) -> str | None:
        files = (self._api.request("GET", "files") or {}).get("data") or []
        return next((str(f["id"]) for f in files if f.get("filename") == filename), None)

    def file_status(self, file_id: str) -> FileStatus:
        found = self._api.request("GET", f"files/{file_id}") or {}
        processed = found.get("Processed", found.get("processed", True))
        return FileStatus(file_id, FILE_READY if processed else FILE_PENDING)

    def _job_body(self, request: JobRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.api_model(request.model), "training_file": request.training_file,
                                "suffix": job_suffix(request.tag), "training_type": {"type": "Lora"}}
        if request.n_epochs != "auto":
            body["n_epochs"] = request.n_epochs
        if request.batch_size != "auto":
            body["batch_size"] = request.batch_size
        if self._learning_rate is not None:
            body["learning_rate"] = self._learning_rate
        if self._lora_rank is not None:
            body["training_type"] = {"type": "Lora", "lora_r": self._lora_rank, "lora_alpha": 2 * self._lora_rank}
        return body

    def find_jobs(self, request: JobRequest) -> list[JobStatus]:
        wanted = job_suffix(request.tag)
        jobs = (self._api.request("GET", "fine-tunes") or {}).get("data") or []
        return [together_job(j) for j in jobs
                if j.get("suffix") == wanted or wanted in str(j.get("model_output_name") or "")]

    def create_job(self, request: JobRequest) -> JobStatus:
        return together_job(self._api.request("POST", "fine-tunes", json=self._job_body(request), retry=False))

    def retrieve_job(self, job_id: str) -> JobStatus:
        return together_job(self._api.request("GET", f"fine-tunes/{job_id}"))

    def cancel_job(self, job_id: str) -> JobStatus:
        return together_job(self._api.request("POST", f"fine-tunes/{job_id}/cancel"))

    def job_events(self, job_id: str) -> list[dict[str, Any]]:
        events = (self._api.request("GET", f"fine-tunes/{job_id}/events") or {}).get("data") or []
        return [{"created_at": e.get("created_at"), "level": e.get("level"), "message": e.get("message"),
                 "data": {"type": e.get("type")}} for e in events]

    def close(self) -> None:
        self._api.close()
        super().close()
