"""The model catalogue: which models exist, their family, where they can be fine-tuned, and their prices.

Facts live in `models.yaml` beside this file, each with a source and a date; this module only reads them.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from kit.errors import CatalogError

FT_PREFIX = "ft:"


@dataclass(frozen=True)
class ProviderOffer:
    fine_tunable: bool = False
    shutdown: dt.date | None = None
    training_closes: dt.date | None = None
    source: str = ""
    checked: dt.date | None = None


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
    return ProviderOffer(**{k: raw[k] for k in ("fine_tunable", "shutdown", "training_closes", "source", "checked")
                            if k in raw})


def _entry(raw: dict[str, Any]) -> ModelEntry:
    return ModelEntry(
        id=raw["id"],
        family=raw["family"],
        tokenizer=raw.get("tokenizer", "o200k_base"),
        aliases=tuple(raw.get("aliases", ())),
        providers={name: _offer(offer or {}) for name, offer in (raw.get("providers") or {}).items()},
        prices=Prices(**(raw.get("prices") or {})),
    )


@functools.lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    text = resources.files("kit.catalog").joinpath("models.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return Catalog(models=tuple(_entry(raw) for raw in data["models"]))
