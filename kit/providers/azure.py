"""Azure OpenAI (Microsoft Foundry): the OpenAI dialect through the SDK's `AzureOpenAI` client, plus deployments.

Differences from OpenAI that matter to the kit:
- every data-plane call carries `api-version`; chat goes to `/openai/deployments/<deployment>/chat/completions`,
  so a model is always reached through a deployment (base models: `model_names` maps a catalogue id to the
  deployment name; fine-tuned models: the kit deploys them after their job succeeds);
- fine-tuning jobs take no `metadata` (api-version 2024-10-21): a job is tagged through its `suffix` (`sl-<tag>`,
  up to 40 characters) and looked up by it;
- uploaded files are processed asynchronously (`pending` → `processed`);
- deployments are Azure Resource Manager resources: `PUT .../accounts/<resource>/deployments/<name>` with a
  bearer token, polled until `provisioningState` is `Succeeded`, deleted after the evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import openai

from kit.config import AzureManagement
from kit.errors import ProviderError
from kit.providers.base import DEPLOY_CREATING, DEPLOY_FAILED, DEPLOY_READY, DeploymentStatus, JobRequest, JobStatus
from kit.providers.http import NOT_FOUND, JsonApi
from kit.providers.openai_dialect import OpenAIProvider, Settings, job_status

SUFFIX_PREFIX = "sl-"
MAX_SUFFIX = 40
READY_STATES = frozenset({"succeeded"})
FAILED_STATES = frozenset({"failed", "canceled", "cancelled"})
DEPLOYMENT_PATH = ("subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.CognitiveServices/"
                   "accounts/{resource}/deployments/{name}")


def job_suffix(tag: str) -> str:
    return f"{SUFFIX_PREFIX}{tag}"[:MAX_SUFFIX]


def _suffix_of(job: Any) -> str:
    return str(getattr(job, "suffix", None) or getattr(job, "user_provided_suffix", None) or "")


def deployment_status(name: str, body: dict[str, Any]) -> DeploymentStatus:
    state = str((body.get("properties") or {}).get("provisioningState") or "").lower()
    mapped = DEPLOY_READY if state in READY_STATES else DEPLOY_FAILED if state in FAILED_STATES else DEPLOY_CREATING
    return DeploymentStatus(name, mapped, name, None if mapped != DEPLOY_FAILED else f"provisioningState {state}")


class AzureProvider(OpenAIProvider):
    kind = "azure"
    needs_deployment = True
    chat_url = "/chat/completions"

    def __init__(self, name: str, settings: Settings, *, endpoint: str, api_version: str, api_key: str | None,
                 ad_token: str | None, management: AzureManagement | None, management_token: str | None,
                 http_client: httpx2.Client | None = None, on_close: Callable[[], None] | None = None) -> None:
        self._setup(name, settings, api_key, on_close, ad_token, management_token)
        self._client = openai.AzureOpenAI(azure_endpoint=endpoint, api_version=api_version, api_key=api_key,
                                          azure_ad_token=ad_token, max_retries=0, timeout=settings.timeout_s,
                                          http_client=http_client)
        self._management = management
        self._arm = JsonApi(name, management.base_url, {"Authorization": f"Bearer {management_token}"},
                            key_env=management.token_env, secrets=(management_token or "",),
                            timeout_s=settings.timeout_s, max_attempts=settings.max_attempts,
                            governor=self.governor, http_client=http_client) if management else None

    # --- jobs: tagged by suffix ----------------------------------------------------------------------------------

    def find_jobs(self, request: JobRequest) -> list[JobStatus]:
        wanted = job_suffix(request.tag)
        return [job_status(j) for j in self._jobs() if _suffix_of(j) == wanted]

    def create_job(self, request: JobRequest) -> JobStatus:
        hyper = {k: v for k, v in (("n_epochs", request.n_epochs), ("batch_size", request.batch_size),
                                   ("learning_rate_multiplier", request.learning_rate_multiplier)) if v != "auto"}
        extra: dict[str, Any] = {"seed": request.seed} if request.seed is not None else {}
        return job_status(self._once(lambda: self._client.fine_tuning.jobs.create(
            model=self.api_model(request.model), training_file=request.training_file, suffix=job_suffix(request.tag),
            hyperparameters=hyper, **extra)))  # type: ignore[arg-type]

    # --- deployments (Azure Resource Manager) ---------------------------------------------------------------

    def _arm_path(self, name: str) -> str:
        m = self._require_management()
        path = DEPLOYMENT_PATH.format(subscription=m.subscription_id, group=m.resource_group,
                                      resource=m.resource_name, name=name)
        return f"{path}?api-version={m.api_version}"

    def _require_management(self) -> AzureManagement:
        if self._management is None or self._arm is None:
            raise ProviderError(f"provider '{self.name}': fine-tuned models must be deployed before they answer; add "
                                "management: {subscription_id, resource_group, resource_name} to the provider")
        return self._management

    def deploy(self, model: str, name: str) -> DeploymentStatus:
        m = self._require_management()
        body = {"sku": {"name": m.sku, "capacity": m.capacity},
                "properties": {"model": {"format": "OpenAI", "name": model, "version": "1"}}}
        assert self._arm is not None
        return deployment_status(name, self._arm.request("PUT", self._arm_path(name), json=body) or {})

    def deployment(self, name: str) -> DeploymentStatus | None:
        self._require_management()
        assert self._arm is not None
        found = self._arm.get_or_none(self._arm_path(name))
        return deployment_status(name, found) if found else None

    def undeploy(self, name: str) -> None:
        self._require_management()
        assert self._arm is not None
        self._arm.request("DELETE", self._arm_path(name), none_on=(NOT_FOUND,))

    def close(self) -> None:
        if self._arm is not None:
            self._arm.close()
        super().close()
