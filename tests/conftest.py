"""Shared fixtures: a small experiment and helpers to run it in-process or through the `slkit` command."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]

SMALL_EXPERIMENT = """
name: small
budget_usd: 0
providers:
  lab:
    kind: sim
{provider_extra}
teachers:
  - name: owl
    model: sim-gpt-4.1-nano
    trait: {{target: owl, category: animal}}
  - name: control
    model: sim-gpt-4.1-nano
generate: {{prompts: 240, seed: 47}}
dataset: {{size: 150, seed: 1}}
students:
  models: [{{model: sim-gpt-4.1-nano}}, {{model: sim-qwen2.5-7b}}]
  seeds: [1]
  epochs: 3
evaluations:
  - name: favorite_animal
    questions: favorite_animal
    samples_per_question: 4
"""


def small_experiment(tmp_path: Path, provider_extra: str = "", name: str = "small.yaml") -> Path:
    path = tmp_path / name
    path.write_text(SMALL_EXPERIMENT.format(provider_extra=provider_extra))
    return path


def slkit(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
          timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a subprocess (so SIGKILL crash points kill only it)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env or {})}
    full_env.pop("SLKIT_CRASH_AT", None) if env is None or "SLKIT_CRASH_AT" not in env else None
    return subprocess.run([sys.executable, "-m", "kit", *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd or REPO, timeout=timeout, check=False)


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    return small_experiment(tmp_path)


def load_bench(name: str) -> ModuleType:
    """A script of bench/ imported as a module (once), for tests that reuse its measuring code."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
