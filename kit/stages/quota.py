"""Quota-aware scheduling of fine-tuning jobs: per provider and model (or per resource, for Azure), at most N jobs
running at once and M jobs created per window. Limits come from the catalogue's account limits of the route,
overridden by the provider's config; jobs beyond them wait in the queue (in the ledger: no intent yet) rather than
being refused by the provider. A provider's own quota refusal (429 daily_rate_limit_exceeded) defers the group.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kit.catalog import Limits
from kit.checks import route_of
from kit.ledger import JobRecord
from kit.runs import Run

HOUR_S = 3600.0
DEFAULT_WINDOW_H = 24.0
DEFER_AFTER_REFUSAL_H = 1.0
LIVE_STATES = ("intent", "created")


@dataclass(frozen=True)
class Quota:
    """The job limits of one group; None = no limit."""

    group: tuple[str, ...]
    max_concurrent: int | None
    max_per_window: int | None
    window_s: float


def quota_for(run: Run, provider: str | None, model: str) -> Quota:
    """The limits that apply to jobs of `model` on this provider: config overrides, else catalogue facts."""
    name = run.config.provider_name(provider)
    config = run.config.providers[name]
    route = route_of(config)
    entry = run.catalog.find(model)
    offer = entry.providers.get(route) if entry is not None else None
    limits = offer.limits if offer is not None else Limits()
    group = (name, model) if limits.scope == "model" else (name,)
    window_h = config.jobs_window_h or limits.jobs_window_h or DEFAULT_WINDOW_H
    return Quota(group, config.max_concurrent_jobs or limits.max_concurrent_jobs,
                 config.max_jobs_per_day or limits.max_jobs_per_day, window_h * HOUR_S)


class Scheduler:
    """Decides, from the ledger, whether one more job of a group may be created now, and when the next slot opens."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._deferred: dict[tuple[str, ...], float] = {}

    def _members(self, quota: Quota) -> list[JobRecord]:
        """This run's jobs at the provider (created, or about to be) that count against the group's limits."""
        return [r for r in self._run.ledger.jobs()
                if (r.job_id or r.state == "intent") and quota_for(self._run, r.provider, r.base_model).group
                == quota.group]

    def opens_at(self, quota: Quota, now: float) -> float:
        """When the next job of this group may be created (now or earlier: at once; inf: when a job finishes)."""
        members = self._members(quota)
        at = self._deferred.get(quota.group, 0.0)
        running = [r for r in members if r.state in LIVE_STATES]
        if quota.max_concurrent is not None and len(running) >= quota.max_concurrent:
            at = max(at, float("inf"))
        if quota.max_per_window is not None:
            recent = sorted(r.created_at for r in members if r.created_at > now - quota.window_s)
            if len(recent) >= quota.max_per_window:
                at = max(at, recent[len(recent) - quota.max_per_window] + quota.window_s)
        return at

    def deferred_until(self, quota: Quota) -> float:
        return self._deferred.get(quota.group, 0.0)

    def defer(self, quota: Quota, seconds: float = DEFER_AFTER_REFUSAL_H * HOUR_S) -> None:
        """The provider refused a create for quota: try this group again after `seconds`."""
        self._deferred[quota.group] = time.time() + seconds
