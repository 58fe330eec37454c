"""Where a run's results came from, read from its ledger and folder: versions, models, jobs, files and hashes,
and spend per stage beside the plan's estimate."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import platform
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from kit import __version__
from kit.analysis.figures import loss_points
from kit.budget import ESTIMATE_META
from kit.ledger import JobRecord
from kit.plan import estimate
from kit.runs import Run, git_revision
from kit.stages.common import safe_name

HASH_CHUNK = 1 << 20
DATA_PATTERNS = ("teachers/*/*.jsonl", "evaluations/*/*.jsonl", "*.csv")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def config_yaml(run: Run) -> str:
    """The validated config as YAML (it holds environment variable names, never keys)."""
    return yaml.safe_dump(run.config.model_dump(mode="json"), sort_keys=False, width=110)


def _started(run: Run) -> str:
    times = [r["started_at"] for r in run.ledger.stages() if r["started_at"]]
    return dt.datetime.fromtimestamp(min(times), dt.UTC).isoformat(timespec="seconds") if times else ""


def summary(run: Run) -> dict[str, str]:
    """Run identity and software versions."""
    canonical = json.dumps(run.config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return {"experiment": run.config.name, "run id": run.id, "run uid": run.uid, "run folder": str(run.dir),
            "config file": str(run.config_path), "config sha256": hashlib.sha256(canonical.encode()).hexdigest(),
            "kit version": __version__, "git revision": git_revision() or "unknown",
            "python": platform.python_version(), "run started": _started(run),
            "report written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def models_table(run: Run) -> pd.DataFrame:
    """Every model the run used: teachers, base students and fine-tuned students."""
    rows: list[dict[str, Any]] = []
    for t in run.config.teachers:
        trait = f"{t.trait.target} via {t.trait.via}" if t.trait else "none (control)"
        if t.finetune is not None:
            trait += f"; fine-tuned on {t.finetune.file}"
        rows.append({"role": f"teacher '{t.name}'", "model": t.model, "trait": trait,
                     "family": _family(run, t.model)})
    for s in dict.fromkeys(m.model for m in run.config.students.models):
        rows.append({"role": "student base", "model": s, "trait": "", "family": _family(run, s)})
    for job in run.ledger.jobs():
        if job.fine_tuned_model:
            rows.append({"role": f"fine-tuned ({job.cell})", "model": job.fine_tuned_model, "trait": "",
                         "family": _family(run, job.base_model)})
    return pd.DataFrame(rows, columns=["role", "model", "trait", "family"])


def _family(run: Run, model: str) -> str:
    entry = run.catalog.find(model)
    return entry.family if entry is not None else ""


def jobs_table(jobs: list[JobRecord]) -> pd.DataFrame:
    rows = [{"cell": j.cell, "state": j.state, "job id": j.job_id or "", "base model": j.base_model,
             "fine-tuned model": j.fine_tuned_model or "", "training file": j.training_file or "",
             "trained tokens": j.trained_tokens, "hyperparameters": json.dumps(j.hyperparameters, sort_keys=True),
             "final loss": _final_loss(j)} for j in jobs]
    return pd.DataFrame(rows, columns=["cell", "state", "job id", "base model", "fine-tuned model", "training file",
                                       "trained tokens", "hyperparameters", "final loss"])


def _final_loss(job: JobRecord) -> float | None:
    points = loss_points(job.events)
    return points[-1][1] if points else None


UPLOAD_COLUMNS = ["provider", "state", "file_id", "filename", "sha256", "bytes"]


def uploads_table(run: Run) -> pd.DataFrame:
    """Every file uploaded to a provider, with the sha256 of its bytes (read-only view of the ledger)."""
    with contextlib.closing(sqlite3.connect(f"file:{run.ledger.path}?mode=ro", uri=True)) as conn:
        rows = conn.execute(f"SELECT {', '.join(UPLOAD_COLUMNS)} FROM uploads ORDER BY created_at").fetchall()
    return pd.DataFrame(rows, columns=UPLOAD_COLUMNS)


def files_table(run: Run) -> pd.DataFrame:
    """sha256 and size of the run's data files (teacher data, training files, evaluation answers, tables)."""
    paths = sorted({p for pattern in DATA_PATTERNS for p in run.dir.glob(pattern) if p.is_file()})
    rows = [{"file": str(p.relative_to(run.dir)), "bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in paths]
    return pd.DataFrame(rows, columns=["file", "bytes", "sha256"])


def start_estimate(run: Run) -> list[dict[str, Any]]:
    """The per-stage estimate stored when the run first started; the plan's estimate of the whole experiment when
    the run predates stored estimates."""
    stored = run.ledger.meta(ESTIMATE_META)
    if stored:
        return list(json.loads(stored).get("stages", []))
    return [asdict(s) for s in estimate(run.config, run.catalog).stages]


def _tokens(stage: Mapping[str, Any]) -> int:
    return int(stage.get("input_tokens", 0)) + int(stage.get("output_tokens", 0)) + int(stage.get("trained_tokens", 0))


def costs_table(run: Run, stages: list[dict[str, Any]]) -> pd.DataFrame:
    """Per stage: the estimate and the ledger's actual dollars and tokens (input + output + trained)."""
    actual = run.ledger.usage_by_stage()
    rows: list[dict[str, Any]] = []
    for s in stages:
        spent = actual.get(s["stage"])
        if not (_tokens(s) or s.get("usd") or spent):
            continue
        rows.append({"stage": s["stage"], "estimate_usd": float(s.get("usd", 0.0)),
                     "actual_usd": spent.usd if spent else 0.0, "estimate_tokens": _tokens(s),
                     "actual_tokens": (spent.input_tokens + spent.output_tokens + spent.trained_tokens) if spent else 0})
    known = {s["stage"] for s in stages}
    for name, spent in actual.items():
        if name not in known:
            rows.append({"stage": name, "estimate_usd": math.nan, "actual_usd": spent.usd, "estimate_tokens": math.nan,
                         "actual_tokens": spent.input_tokens + spent.output_tokens + spent.trained_tokens})
    return pd.DataFrame(rows, columns=["stage", "estimate_usd", "actual_usd", "estimate_tokens", "actual_tokens"])


def loss_series(jobs: list[JobRecord]) -> list[tuple[str, str, list[tuple[float, float]]]]:
    """(student model, job label, (step, loss) points) per job, for the loss-curve figure."""
    return [(job.base_model, job.cell.replace(f"--{safe_name(job.base_model)}", ""), loss_points(job.events))
            for job in jobs]
