"""Pre-flight checks that need no network: every model is known, offered by its route, fine-tunable where it
must be, and not past its shutdown date; every provider that needs a key has one."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlparse

from kit.catalog import Catalog, ModelEntry
from kit.config import ExperimentConfig, ProviderConfig
from kit.errors import CatalogError

AZURE_HOST_SUFFIXES = (".openai.azure.com", ".services.ai.azure.com", ".cognitiveservices.azure.com")
ROUTE_HINTS = {"azure": "set provider: to one with kind: azure (base_url: https://<resource>.openai.azure.com)"}


def route_of(provider: ProviderConfig) -> str:
    """The catalogue route a provider reaches: its kind, except that an `openai`-kind provider pointed at an Azure
    OpenAI endpoint is the `azure` route (same API shapes, different models, limits and hosting)."""
    if provider.kind == "openai" and provider.base_url:
        host = (urlparse(provider.base_url).hostname or "").lower()
        if host.endswith(AZURE_HOST_SUFFIXES):
            return "azure"
    return provider.kind


def _alternatives(entry: ModelEntry, route: str, today: dt.date) -> str:
    others = [name for name, offer in entry.providers.items()
              if name != route and offer.fine_tunable and (offer.shutdown is None or offer.shutdown > today)]
    if not others:
        return ""
    hint = ROUTE_HINTS.get(others[0], f"set provider kind {others[0]}")
    return f"; {', '.join(others)} still fine-tunes it: {hint}"


def check_model(catalog: Catalog, model: str, kind: str, *, fine_tune: bool, today: dt.date, where: str) -> None:
    """`kind` is the route (see `route_of`)."""
    entry = catalog.get(model)
    offer = entry.providers.get(kind)
    if offer is None:
        routes = ", ".join(entry.providers) or "none"
        raise CatalogError(f"{where}: model '{model}' is not offered by a '{kind}' provider (offered by: {routes})")
    if offer.shutdown is not None and offer.shutdown <= today:
        raise CatalogError(f"{where}: {entry.id} was shut down on {kind} on {offer.shutdown.isoformat()}"
                           f"{_alternatives(entry, kind, today)}")
    if fine_tune and not offer.fine_tunable:
        raise CatalogError(f"{where}: {entry.id} cannot be fine-tuned on {kind}{_alternatives(entry, kind, today)}")
    if fine_tune and offer.training_closes is not None and offer.training_closes <= today:
        raise CatalogError(f"{where}: {kind} stopped creating fine-tuning jobs for {entry.id} on "
                           f"{offer.training_closes.isoformat()}{_alternatives(entry, kind, today)}")


def check_experiment(config: ExperimentConfig, catalog: Catalog, today: dt.date | None = None) -> None:
    """Raise CatalogError for the first model the experiment cannot use as configured."""
    day = today or dt.date.today()
    for i, teacher in enumerate(config.teachers):
        route = route_of(config.providers[config.provider_name(teacher.provider)])
        needs_ft = teacher.trained()
        check_model(catalog, teacher.model, route, fine_tune=needs_ft, today=day, where=f"teachers[{i}]")
    for i, student in enumerate(config.students.models):
        route = route_of(config.providers[config.provider_name(student.provider)])
        check_model(catalog, student.model, route, fine_tune=True, today=day, where=f"students.models[{i}]")
    for i, evaluation in enumerate(config.evaluations):  # the judges of judged evaluations (kit/scorers/judge.py)
        for which, judge in evaluation.judge_configs():
            route = route_of(config.providers[config.provider_name(judge.provider)])
            check_model(catalog, judge.model, route, fine_tune=False, today=day,
                        where=f"evaluations[{i}] {which} judge")
    judge = getattr(config.filter, "judge", None)  # the code and chain-of-thought filters' judges
    if judge is not None:
        route = route_of(config.providers[config.provider_name(judge.provider)])
        check_model(catalog, judge.model, route, fine_tune=False, today=day, where="filter.judge")


def check_credentials(config: ExperimentConfig, env: dict[str, str]) -> None:
    """Every provider that needs a key has its variable set (checked before anything is written or sent)."""
    from kit.providers import api_key

    for name, provider in config.providers.items():
        api_key(name, provider, env)
