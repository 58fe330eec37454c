"""A run: its folder under data/runs/<experiment>/<run-id>/, its ledger, its providers, and derived files.

The run id is a fingerprint of the validated config, so running the same experiment again resumes the same run
(and sends no request already answered); a changed config starts a new run.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import json
import os
import platform
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kit import __version__
from kit.catalog import Catalog, load_catalog
from kit.config import ExperimentConfig
from kit.errors import LedgerError
from kit.fileio import write_atomic
from kit.ledger import Ledger
from kit.progress import NullProgress, Progress
from kit.providers import open_provider
from kit.providers.base import Provider

RUNS_DIR = "runs"
RUN_ID_LENGTH = 12
LOCK_FILE = "run.lock"
MANIFEST_FILE = "manifest.json"


def default_data_root() -> Path:
    return Path(os.environ.get("SLKIT_DATA_DIR", "data"))


def run_dir_for(config: ExperimentConfig, data_root: Path, run_id: str | None = None) -> Path:
    return data_root / RUNS_DIR / config.name / (run_id or config.fingerprint()[:RUN_ID_LENGTH])


@functools.lru_cache(maxsize=1)
def git_revision() -> str | None:
    source = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@dataclass
class Run:
    """Everything a stage needs. Open with `open_run`; providers open on first use and close with the run."""

    config: ExperimentConfig
    config_path: Path
    dir: Path
    ledger: Ledger
    uid: str
    data_root: Path
    env: dict[str, str]
    progress: Progress = field(default_factory=NullProgress)
    catalog: Catalog = field(default_factory=load_catalog)
    budget_usd: float | None = None
    _providers: dict[str, Provider] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.dir.name

    def provider(self, name: str | None) -> Provider:
        key = self.config.provider_name(name)
        if key not in self._providers:
            self._providers[key] = open_provider(key, self.config.providers[key], env=self.env,
                                                 data_root=self.data_root)
        return self._providers[key]

    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    def close(self) -> None:
        for provider in self._providers.values():
            provider.close()
        self._providers.clear()
        self.ledger.close()


def _lock(run_dir: Path) -> IO[str]:
    handle = open(run_dir / LOCK_FILE, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise LedgerError(f"{run_dir} is in use by another slkit process; wait for it to finish or stop it") from None
    return handle


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as err:
        raise LedgerError(f"cannot write to {path} ({err.strerror}); choose a writable folder with --data-dir "
                          "or SLKIT_DATA_DIR") from None


@contextmanager
def open_run(config: ExperimentConfig, config_path: Path, *, data_root: Path | None = None,
             run_id: str | None = None, env: dict[str, str] | None = None, progress: Progress | None = None,
             budget_usd: float | None = None) -> Iterator[Run]:
    """Open (or create) the run folder, lock it against a second process, open the ledger, write the manifest."""
    root = data_root or default_data_root()
    run_dir = run_dir_for(config, root, run_id)
    _make_dir(run_dir)
    lock = _lock(run_dir)
    try:
        ledger = Ledger.open(run_dir)
        uid = ledger.meta_default("run_uid", uuid.uuid4().hex[:16])
        ledger.meta_default("config", json.dumps(config.model_dump(mode="json"), sort_keys=True))
        run = Run(config=config, config_path=config_path, dir=run_dir, ledger=ledger, uid=uid, data_root=root,
                  env=dict(os.environ if env is None else env), progress=progress or NullProgress(),
                  budget_usd=config.budget_usd if budget_usd is None else budget_usd)
        try:
            write_manifest(run)
            yield run
        finally:
            run.close()
    finally:
        lock.close()


def write_manifest(run: Run, timings: dict[str, Any] | None = None) -> None:
    """manifest.json: config, kit version, git revision, stage timings. Never secrets: config holds env names."""
    stages = {row["name"]: {"state": row["state"], "started_at": row["started_at"], "finished_at": row["finished_at"]}
              for row in run.ledger.stages()}
    manifest = {
        "experiment": run.config.name, "run_id": run.id, "run_uid": run.uid,
        "config_file": str(run.config_path), "config": run.config.model_dump(mode="json"),
        "kit_version": __version__, "git_revision": git_revision(), "python": platform.python_version(),
        "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "stages": stages,
        **({"timings": timings} if timings else {}),
    }
    write_atomic(run.path(MANIFEST_FILE), json.dumps(manifest, indent=2, sort_keys=True) + "\n")
