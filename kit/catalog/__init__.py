"""The model catalogue: which models exist, their family, where they can be fine-tuned, and their prices.

Facts live in `models.yaml` beside this file, each with a source and a date; this module only reads them.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kit.errors import CatalogError

FT_PREFIX = "ft:"
CATALOG_ENV = "SLKIT_CATALOG"  # path to a catalogue YAML used instead of the packaged one (e.g. test prices)
DEFAULT_JOBS_WINDOW_H = 24.0


@dataclass(frozen=True)
class Limits:
    """Account limits of one route for one model; None = not known. `scope` says what a job limit is counted
    over: `model` (per model, per organisation: OpenAI) or `resource` (every model of the route: Azure)."""

    max_concurrent_jobs: int | None = None
    max_jobs_per_day: int | None = None
    jobs_window_h: float = DEFAULT_JOBS_WINDOW_H
    max_new_jobs_per_10_min: int | None = None
    max_queued_jobs: int | None = None
    max_total_jobs: int | None = None
    max_trained_tokens: int | None = None
    max_deployments: int | None = None
    scope: str = "model"
    source: str = ""
    checked: dt.date | None = None


@dataclass(frozen=True)
class Deployment:
    """Whether a fine-tuned model must be deployed before inference, and what hosting it costs."""

    required: bool = False
    tier: str = ""
    hosting_usd_per_hour: float | None = None  # None = not known: the plan shows hours, not dollars
    lifetime_h: float | None = None  # deployments of this tier are deleted after this long
    source: str = ""
    checked: dt.date | None = None


@dataclass(frozen=True)
class ProviderOffer:
    fine_tunable: bool = False
    shutdown: dt.date | None = None
    training_closes: dt.date | None = None
    source: str = ""
    checked: dt.date | None = None
    limits: Limits = field(default_factory=Limits)
    deployment: Deployment = field(default_factory=Deployment)


@dataclass(frozen=True)
class RouteAssumptions:
    """Throughput the plan assumes on a route where no provider publishes a number: kit defaults, not facts."""

    requests_per_min: float | None = None
    tokens_per_min: float | None = None
    request_latency_s: float = 1.0
    output_tokens_per_s: float = 100.0
    train_tokens_per_hour: float = 20_000_000.0
    job_overhead_h: float = 0.5
    source: str = ""


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens."""

    input: float = 0.0
    output: float = 0.0
    ft_input: float = 0.0
    ft_output: float = 0.0
    train: float = 0.0
    batch_discount: float = 0.5
    source: str = ""
    checked: dt.date | None = None


@dataclass(frozen=True)
class ModelEntry:
    id: str
    family: str
    tokenizer: str = "o200k_base"
    aliases: tuple[str, ...] = ()
    providers: dict[str, ProviderOffer] = field(default_factory=dict)
    prices: Prices = field(default_factory=Prices)


def base_model_id(model_id: str) -> str:
    """The base model of a fine-tuned name (`ft:<base>:<org>:<suffix>:<id>`); other names are returned as given."""
    if model_id.startswith(FT_PREFIX):
        parts = model_id.split(":")
        if len(parts) >= 2 and parts[1]:
            return parts[1]
    return model_id


@dataclass(frozen=True)
class Catalog:
    models: tuple[ModelEntry, ...]
    assumptions: dict[str, RouteAssumptions] = field(default_factory=dict)

    def assumed(self, route: str) -> RouteAssumptions:
        """The throughput assumptions of a route (kit defaults when the catalogue has none for it)."""
        return self.assumptions.get(route) or RouteAssumptions(source="kit default")

    def find(self, model_id: str) -> ModelEntry | None:
        """The entry for a model id, alias or fine-tuned name; None when unknown."""
        name = base_model_id(model_id)
        for entry in self.models:
            if name == entry.id or name in entry.aliases:
                return entry
        return None

    def get(self, model_id: str) -> ModelEntry:
        entry = self.find(model_id)
        if entry is None:
            known = ", ".join(m.id for m in self.models)
            raise CatalogError(f"unknown model '{model_id}': use one of {known} (see `slkit models`)")
        return entry

    def family_of(self, model_id: str) -> str:
        return self.get(model_id).family


def _offer(raw: dict[str, Any]) -> ProviderOffer:
    fields = {k: raw[k] for k in ("fine_tunable", "shutdown", "training_closes", "source", "checked") if k in raw}
    return ProviderOffer(**fields, limits=Limits(**(raw.get("limits") or {})),
                         deployment=Deployment(**(raw.get("deployment") or {})))


def _entry(raw: dict[str, Any]) -> ModelEntry:
    return ModelEntry(
        id=raw["id"],
        family=raw["family"],
        tokenizer=raw.get("tokenizer", "o200k_base"),
        aliases=tuple(raw.get("aliases", ())),
        providers={name: _offer(offer or {}) for name, offer in (raw.get("providers") or {}).items()},
        prices=Prices(**(raw.get("prices") or {})),
    )


def _parse(text: str, origin: str) -> Catalog:
    try:
        data = yaml.safe_load(text)
        assumptions = {route: RouteAssumptions(**(raw or {}))
                       for route, raw in ((data.get("assumptions") or {}).get("routes") or {}).items()}
        return Catalog(models=tuple(_entry(raw) for raw in data["models"]), assumptions=assumptions)
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as err:
        raise CatalogError(f"{origin} is not a valid model catalogue ({type(err).__name__}: {err}); "
                           f"fix it or unset {CATALOG_ENV}") from None


@functools.lru_cache(maxsize=8)
def _load(path: str | None) -> Catalog:
    if path is None:
        return _parse(resources.files("kit.catalog").joinpath("models.yaml").read_text(encoding="utf-8"),
                      "the packaged kit/catalog/models.yaml")
    try:
        return _parse(Path(path).read_text(encoding="utf-8"), path)
    except OSError as err:
        raise CatalogError(f"{CATALOG_ENV}={path}: cannot read the catalogue ({err.strerror}); fix the path "
                           f"or unset {CATALOG_ENV}") from None


def load_catalog() -> Catalog:
    """The model catalogue: `$SLKIT_CATALOG` when set (a copy with other prices, say), else the packaged one."""
    return _load(os.environ.get(CATALOG_ENV) or None)
