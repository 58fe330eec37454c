"""Deployments of fine-tuned models on routes where a model must be deployed before it answers (Azure OpenAI,
Fireworks): created once per cell (intent in the ledger first, looked up by its deterministic name before any
create), waited for, and deleted after the evaluation; the hours a deployment existed are billed as hosting spend.
"""

from __future__ import annotations

import hashlib
import time

from kit.checks import route_of
from kit.errors import ProviderError
from kit.faultpoints import crash_point
from kit.ledger import DeploymentRecord, Usage
from kit.providers.base import DEPLOY_FAILED, DEPLOY_READY, DeploymentStatus, Provider
from kit.runs import Run

STAGE = "evaluate"
NAME_PREFIX = "slkit-"
NAME_HASH = 16
HOUR_S = 3600.0
LIVE = ("intent", "creating", "ready")


def deployment_name(run: Run, cell: str) -> str:
    """Deterministic per run and cell: lower-case letters, digits and dashes (valid on Azure and Fireworks)."""
    return NAME_PREFIX + hashlib.sha256(f"{run.uid}:{cell}".encode()).hexdigest()[:NAME_HASH]


def cell_of_model(run: Run, model: str) -> tuple[str, str] | None:
    """(cell, base model) of the job that produced this fine-tuned model, if any."""
    for record in run.ledger.jobs():
        if record.fine_tuned_model == model and record.state == "succeeded":
            return record.cell, record.base_model
    return None


def inference_model(run: Run, provider: Provider, model: str) -> str:
    """The name chat requests use for `model`: itself, or its deployment's (deploying it first if needed)."""
    if not provider.needs_deployment:
        return model
    found = cell_of_model(run, model)
    return ensure_deployed(run, provider, found[0], model) if found else model


def _start(run: Run, provider: Provider, name: str, model: str) -> DeploymentStatus:
    status = provider.deployment(name)
    if status is None or status.state == DEPLOY_FAILED:
        status = provider.deploy(model, name)
    crash_point("deploy:after-create")
    run.ledger.update_deployment(name, state="creating", inference_model=status.inference_model)
    return status


def ensure_deployed(run: Run, provider: Provider, cell: str, model: str) -> str:
    name = deployment_name(run, cell)
    record = run.ledger.deployment(name)
    if record is not None and record.state == "ready" and record.inference_model:
        return record.inference_model
    if record is None:
        run.ledger.record_deployment_intent(name, cell, provider.name, model)
    elif record.state in ("deleted", "failed"):  # deployed again: its hosting hours count from now
        run.ledger.update_deployment(name, state="intent", created_at=time.time(), deleted_at=None, error=None)
    if record is None or record.state in ("deleted", "failed"):
        run.progress.note(f"deploying {model} as {name} on {provider.name}")
    status = _start(run, provider, name, model)
    status = _wait_ready(run, provider, name, status)
    run.ledger.update_deployment(name, state="ready", ready_at=time.time(), inference_model=status.inference_model)
    return status.inference_model


def _wait_ready(run: Run, provider: Provider, name: str, status: DeploymentStatus) -> DeploymentStatus:
    deadline = time.monotonic() + run.config.providers[provider.name].deploy_deadline_s
    while status.state != DEPLOY_READY:
        if status.state == DEPLOY_FAILED:
            run.ledger.update_deployment(name, state="failed", error=status.error)
            raise ProviderError(f"provider '{provider.name}': deployment {name} failed ({status.error}); check the "
                                "resource's deployment quota, then rerun")
        if time.monotonic() > deadline:
            raise ProviderError(f"provider '{provider.name}': deployment {name} is not ready after the deadline; "
                                "rerun later to resume (it is not created twice)")
        time.sleep(provider.poll_interval_s)
        status = provider.deployment(name) or status
    return status


def hosting_usd(run: Run, record: DeploymentRecord, hours: float) -> float:
    entry = run.catalog.find(record.model) or next(
        (run.catalog.find(j.base_model) for j in run.ledger.jobs() if j.cell == record.cell), None)
    if entry is None:
        return 0.0
    offer = entry.providers.get(route_of(run.config.providers[record.provider]))
    rate = offer.deployment.hosting_usd_per_hour if offer is not None else None
    return hours * rate if rate else 0.0


def release_deployments(run: Run) -> int:
    """Delete this run's live deployments whose provider asks for it; bill their hosting hours. Returns how many."""
    released = 0
    for record in run.ledger.deployments():
        config = run.config.providers.get(record.provider)
        if record.state not in LIVE or config is None or not config.delete_deployments:
            continue
        run.provider(record.provider).undeploy(record.name)
        hours = max(0.0, time.time() - record.created_at) / HOUR_S
        usd = hosting_usd(run, record, hours)
        run.ledger.update_deployment(record.name, state="deleted", deleted_at=time.time(),
                                     hosting_usd=record.hosting_usd + usd)
        run.ledger.add_usage(STAGE, record.model, Usage(record.provider, usd=usd))
        run.progress.note(f"deleted deployment {record.name} after {hours:.2f} h (hosting ${usd:,.2f})")
        released += 1
    return released
