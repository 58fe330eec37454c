"""The lab's files under `data_dir`: cached family initialisations and fine-tuned models.

    data_dir/families/<family>.npz       built once from the family name; a cache, safe to delete
    data_dir/models/<model file>.npz     a fine-tuned model's body
    data_dir/models/<model file>.json    its id, base model, family, creation time, tokens and hyperparameters

Every file is written to a temp name and renamed, so a crash never leaves half a model behind.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kit.sim.lab.initialise import build_family
from kit.sim.lab.network import Body, Family, load_body, load_family, save_body, save_family

FAMILIES_DIR = "families"
MODELS_DIR = "models"
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class FineTuned:
    """What the lab records about a fine-tuned model."""

    id: str
    base: str  # the catalogue base model (root of any chain of fine-tunes)
    parent: str  # the model this one was trained from
    family: str
    created: int
    trained_tokens: int
    hyperparameters: dict[str, Any]


def file_stem(model_id: str) -> str:
    return _UNSAFE_RE.sub("_", model_id)


def family(data_dir: Path, name: str) -> Family:
    """The family's parameters from the npz cache, building and caching them on first use."""
    path = data_dir / FAMILIES_DIR / f"{file_stem(name)}.npz"
    if path.is_file():
        try:
            return load_family(name, path)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache is rebuilt below
    built = build_family(name)
    save_family(built, path)
    return built


def save_model(data_dir: Path, record: FineTuned, body: Body) -> None:
    folder, stem = data_dir / MODELS_DIR, file_stem(record.id)
    save_body(body, folder / f"{stem}.npz")
    _write_text(folder / f"{stem}.json", json.dumps(asdict(record), indent=2, sort_keys=True))


def load_model_body(data_dir: Path, model_id: str) -> Body:
    return load_body(data_dir / MODELS_DIR / f"{file_stem(model_id)}.npz")


def scan_models(data_dir: Path, known: Collection[str] = ()) -> dict[str, FineTuned]:
    """Every complete fine-tuned model on disk (json and npz both present) whose id is not in `known`."""
    found: dict[str, FineTuned] = {}
    folder = data_dir / MODELS_DIR
    if not folder.is_dir():
        return found
    skip = {file_stem(model_id) for model_id in known}
    for meta in sorted(folder.glob("*.json")):
        if meta.name[: -len(".json")] in skip:
            continue
        record = _read_record(meta)
        if record is not None and (folder / f"{file_stem(record.id)}.npz").is_file():
            found[record.id] = record
    return found


def _read_record(path: Path) -> FineTuned | None:
    try:
        return FineTuned(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temp, path)
