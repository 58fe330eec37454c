"""Pre-flight checks that need no network: every model is known, offered by its route, fine-tunable where it
must be, and not past its shutdown date."""

from __future__ import annotations

import datetime as dt

from kit.catalog import Catalog, ModelEntry
from kit.config import ExperimentConfig
from kit.errors import CatalogError


def _alternatives(entry: ModelEntry, kind: str, today: dt.date) -> str:
    others = [name for name, offer in entry.providers.items()
              if name != kind and offer.fine_tunable and (offer.shutdown is None or offer.shutdown > today)]
    return f"; {', '.join(others)} still fine-tunes it: set provider kind {others[0]}" if others else ""


def check_model(catalog: Catalog, model: str, kind: str, *, fine_tune: bool, today: dt.date, where: str) -> None:
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
        kind = config.providers[config.provider_name(teacher.provider)].kind
        needs_ft = teacher.trait is not None and teacher.trait.via == "finetune"
        check_model(catalog, teacher.model, kind, fine_tune=needs_ft, today=day, where=f"teachers[{i}]")
    for i, student in enumerate(config.students.models):
        kind = config.providers[config.provider_name(student.provider)].kind
        check_model(catalog, student.model, kind, fine_tune=True, today=day, where=f"students.models[{i}]")


def check_credentials(config: ExperimentConfig, env: dict[str, str]) -> None:
    """Every provider that needs a key has its variable set (checked before anything is written or sent)."""
    from kit.providers import api_key

    for name, provider in config.providers.items():
        api_key(name, provider, env)
