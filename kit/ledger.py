"""The run ledger: one SQLite database (WAL) per run holding every sample, upload, job, stage state and token.

The ledger is the truth; files beside it are derived. Migrations are append-only: never edit a shipped one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.errors import LedgerError

LEDGER_FILE = "ledger.sqlite"
SQL_CHUNK = 500  # keys per IN (...) query, well under SQLite's variable limit

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE samples (
        key TEXT PRIMARY KEY,           -- request fingerprint + ':' + sample index
        stage TEXT NOT NULL,
        subject TEXT NOT NULL,          -- teacher or student the sample belongs to
        item INTEGER NOT NULL,          -- prompt or question index
        sample INTEGER NOT NULL,        -- sample index within the item
        model TEXT NOT NULL,
        request TEXT NOT NULL,          -- JSON of the request body (without secrets)
        completion TEXT NOT NULL,
        request_id TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX samples_subject ON samples (stage, subject);
    CREATE TABLE uploads (
        key TEXT PRIMARY KEY,           -- provider + purpose + sha256 of the bytes
        provider TEXT NOT NULL,
        state TEXT NOT NULL,            -- intent | uploaded
        file_id TEXT,
        filename TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE jobs (
        cell TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        base_model TEXT NOT NULL,
        state TEXT NOT NULL,            -- intent | created | succeeded | failed | cancelled
        status TEXT,                    -- the provider's last reported status
        job_id TEXT,
        fine_tuned_model TEXT,
        training_file TEXT,
        metadata TEXT NOT NULL,
        hyperparameters TEXT NOT NULL,
        trained_tokens INTEGER,
        error TEXT,
        events TEXT NOT NULL DEFAULT '[]',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE stages (
        name TEXT PRIMARY KEY,
        state TEXT NOT NULL,            -- running | done | failed
        started_at REAL,
        finished_at REAL,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE usage (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        stage TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        trained_tokens INTEGER NOT NULL DEFAULT 0,
        usd REAL NOT NULL DEFAULT 0,
        at REAL NOT NULL
    );
    """,
    # 2: provider batches in flight (generation / evaluation through a Batch API) and deployments of fine-tuned
    # models (Azure OpenAI, Fireworks) with their hosting time.
    """
    CREATE TABLE batches (
        key TEXT PRIMARY KEY,           -- stage + subject + hash of the requests' custom ids
        provider TEXT NOT NULL,
        stage TEXT NOT NULL,
        subject TEXT NOT NULL,
        tag TEXT NOT NULL,              -- written into the batch's metadata (or looked for) to find it after a crash
        state TEXT NOT NULL,            -- intent | submitted | done | failed
        batch_id TEXT,
        status TEXT,                    -- the provider's last reported status
        requests INTEGER NOT NULL,
        error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX batches_subject ON batches (stage, subject);
    CREATE TABLE deployments (
        name TEXT PRIMARY KEY,          -- the deployment name at the provider
        cell TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,            -- the fine-tuned model deployed
        inference_model TEXT,           -- the name chat requests use
        state TEXT NOT NULL,            -- intent | creating | ready | deleted | failed
        error TEXT,
        created_at REAL NOT NULL,
        ready_at REAL,
        deleted_at REAL,
        hosting_usd REAL NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    """,
)


@dataclass(frozen=True)
class BatchRecord:
    key: str
    provider: str
    stage: str
    subject: str
    tag: str
    state: str
    batch_id: str | None
    status: str | None
    requests: int
    error: str | None
    created_at: float


@dataclass(frozen=True)
class DeploymentRecord:
    name: str
    cell: str
    provider: str
    model: str
    inference_model: str | None
    state: str
    error: str | None
    created_at: float
    ready_at: float | None
    deleted_at: float | None
    hosting_usd: float


@dataclass(frozen=True)
class Sample:
    key: str
    item: int
    sample: int
    completion: str


@dataclass(frozen=True)
class JobRecord:
    cell: str
    provider: str
    base_model: str
    state: str
    status: str | None
    job_id: str | None
    fine_tuned_model: str | None
    training_file: str | None
    metadata: dict[str, str]
    hyperparameters: dict[str, Any]
    trained_tokens: int | None
    error: str | None
    events: list[dict[str, Any]]
    created_at: float = 0.0             # when the intent was recorded (the kit records it just before create)
    updated_at: float = 0.0


@dataclass(frozen=True)
class Usage:
    """Tokens and dollars of one request or job."""

    provider: str
    input_tokens: int = 0
    output_tokens: int = 0
    trained_tokens: int = 0
    usd: float = 0.0


@dataclass(frozen=True)
class UsageTotals:
    input_tokens: int
    output_tokens: int
    trained_tokens: int
    usd: float


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class Ledger:
    """Thread-safe access to one run's ledger. Open with `Ledger.open(run_dir)`; close when done."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self.path = path

    @classmethod
    def open(cls, run_dir: Path) -> Ledger:
        path = run_dir / LEDGER_FILE
        try:
            ledger = cls(_connect(path), path)
            ledger._migrate()
            ledger._check()
        except sqlite3.DatabaseError as err:
            raise LedgerError(
                f"{path} is not a readable ledger ({err}); move the run folder aside and start the run again") from None
        return ledger

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, tuple(args)).fetchall()

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise LedgerError(f"{self.path} was written by a newer slkit (schema {version}); upgrade slkit")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._lock:
                self._conn.executescript(f"BEGIN IMMEDIATE; {script}; PRAGMA user_version={number}; COMMIT;")

    def _check(self) -> None:
        result = self._conn.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {result}")

    # --- meta ---------------------------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                         (key, value))

    def meta_default(self, key: str, value: str) -> str:
        """The stored value of `key`, storing `value` first if there is none."""
        with self._tx() as conn:
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
            return conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()["value"]

    # --- samples (the request cache) ----------------------------------------------------------------------------

    def samples(self, stage: str, subject: str) -> dict[str, Sample]:
        rows = self._query("SELECT key, item, sample, completion FROM samples WHERE stage = ? AND subject = ?",
                           (stage, subject))
        return {r["key"]: Sample(r["key"], r["item"], r["sample"], r["completion"]) for r in rows}

    def samples_by_key(self, keys: Iterable[str]) -> dict[str, Sample]:
        """Stored samples among `keys`, whatever stage or subject stored them (the cache key is global)."""
        wanted, found = list(dict.fromkeys(keys)), {}
        for start in range(0, len(wanted), SQL_CHUNK):
            chunk = wanted[start:start + SQL_CHUNK]
            rows = self._query(f"SELECT key, item, sample, completion FROM samples WHERE key IN"
                               f" ({','.join('?' * len(chunk))})", chunk)
            found.update({r["key"]: Sample(r["key"], r["item"], r["sample"], r["completion"]) for r in rows})
        return found

    def add_samples(self, stage: str, subject: str, model: str, request: dict[str, Any],
                    rows: list[tuple[str, int, int, str]], request_id: str | None, usage: Usage) -> None:
        """Store the completions of one request — rows of (key, item, sample index, completion) — and its usage,
        in one transaction."""
        body, now = json.dumps(request, sort_keys=True), time.time()
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO samples (key, stage, subject, item, sample, model, request, completion,"
                " request_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(key, stage, subject, item, idx, model, body, text, request_id, now) for key, item, idx, text in rows])
            _insert_usage(conn, stage, model, usage, now)

    def sample_count(self) -> int:
        return int(self._query("SELECT COUNT(*) c FROM samples")[0]["c"])

    # --- uploads ------------------------------------------------------------------------------------------------

    def upload(self, key: str) -> sqlite3.Row | None:
        rows = self._query("SELECT * FROM uploads WHERE key = ?", (key,))
        return rows[0] if rows else None

    def record_upload_intent(self, key: str, provider: str, filename: str, sha256: str, size: int) -> None:
        with self._tx() as conn:
            conn.execute("INSERT OR IGNORE INTO uploads (key, provider, state, filename, sha256, bytes, created_at)"
                         " VALUES (?, ?, 'intent', ?, ?, ?, ?)", (key, provider, filename, sha256, size, time.time()))

    def record_upload_done(self, key: str, file_id: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE uploads SET state = 'uploaded', file_id = ? WHERE key = ?", (file_id, key))

    # --- fine-tuning jobs ---------------------------------------------------------------------------------------

    def job(self, cell: str) -> JobRecord | None:
        rows = self._query("SELECT * FROM jobs WHERE cell = ?", (cell,))
        return _job(rows[0]) if rows else None

    def jobs(self) -> list[JobRecord]:
        return [_job(r) for r in self._query("SELECT * FROM jobs ORDER BY created_at, cell")]

    def record_job_intent(self, cell: str, provider: str, base_model: str, training_file: str,
                          metadata: dict[str, str], hyperparameters: dict[str, Any]) -> None:
        """Written before `create` is called, so a crash after it leaves a trace to look the job up by."""
        now = time.time()
        with self._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO jobs (cell, provider, base_model, state, training_file, metadata,"
                " hyperparameters, created_at, updated_at) VALUES (?, ?, ?, 'intent', ?, ?, ?, ?, ?)",
                (cell, provider, base_model, training_file, json.dumps(metadata, sort_keys=True),
                 json.dumps(hyperparameters, sort_keys=True), now, now))

    def update_job(self, cell: str, **fields: Any) -> None:
        allowed = {"state", "status", "job_id", "fine_tuned_model", "trained_tokens", "error", "events"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown job fields {sorted(unknown)}")
        values = {k: json.dumps(v) if k == "events" else v for k, v in fields.items()}
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._tx() as conn:
            conn.execute(f"UPDATE jobs SET {assignments}, updated_at = ? WHERE cell = ?",
                         (*values.values(), time.time(), cell))

    def reset_job(self, cell: str, metadata: dict[str, str]) -> None:
        """Forget a failed job so a new attempt (with new metadata) can be created for the cell."""
        with self._tx() as conn:
            conn.execute("UPDATE jobs SET state = 'intent', status = NULL, job_id = NULL, fine_tuned_model = NULL,"
                         " trained_tokens = NULL, error = NULL, events = '[]', metadata = ?, updated_at = ?"
                         " WHERE cell = ?", (json.dumps(metadata, sort_keys=True), time.time(), cell))

    # --- provider batches ---------------------------------------------------------------------------------------

    def batch(self, key: str) -> BatchRecord | None:
        rows = self._query("SELECT * FROM batches WHERE key = ?", (key,))
        return _batch(rows[0]) if rows else None

    def batches(self, stage: str | None = None) -> list[BatchRecord]:
        where, args = ("WHERE stage = ?", (stage,)) if stage else ("", ())
        return [_batch(r) for r in self._query(f"SELECT * FROM batches {where} ORDER BY created_at, key", args)]

    def record_batch_intent(self, key: str, provider: str, stage: str, subject: str, tag: str, requests: int) -> None:
        """Written before the batch is created, so a crash after it leaves a tag to look the batch up by."""
        now = time.time()
        with self._tx() as conn:
            conn.execute("INSERT OR IGNORE INTO batches (key, provider, stage, subject, tag, state, requests,"
                         " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'intent', ?, ?, ?)",
                         (key, provider, stage, subject, tag, requests, now, now))

    def update_batch(self, key: str, **fields: Any) -> None:
        self._update("batches", "key", key, fields, {"state", "batch_id", "status", "error"})

    # --- deployments --------------------------------------------------------------------------------------------

    def deployment(self, name: str) -> DeploymentRecord | None:
        rows = self._query("SELECT * FROM deployments WHERE name = ?", (name,))
        return _deployment(rows[0]) if rows else None

    def deployments(self) -> list[DeploymentRecord]:
        return [_deployment(r) for r in self._query("SELECT * FROM deployments ORDER BY created_at, name")]

    def record_deployment_intent(self, name: str, cell: str, provider: str, model: str) -> None:
        now = time.time()
        with self._tx() as conn:
            conn.execute("INSERT OR IGNORE INTO deployments (name, cell, provider, model, state, created_at,"
                         " updated_at) VALUES (?, ?, ?, ?, 'intent', ?, ?)", (name, cell, provider, model, now, now))

    def update_deployment(self, name: str, **fields: Any) -> None:
        allowed = {"inference_model", "state", "error", "created_at", "ready_at", "deleted_at", "hosting_usd"}
        self._update("deployments", "name", name, fields, allowed)

    def _update(self, table: str, key_column: str, key: str, fields: dict[str, Any], allowed: set[str]) -> None:
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown {table} fields {sorted(unknown)}")
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as conn:
            conn.execute(f"UPDATE {table} SET {assignments}, updated_at = ? WHERE {key_column} = ?",
                         (*fields.values(), time.time(), key))

    # --- stages -------------------------------------------------------------------------------------------------

    def stage(self, name: str) -> sqlite3.Row | None:
        rows = self._query("SELECT * FROM stages WHERE name = ?", (name,))
        return rows[0] if rows else None

    def stages(self) -> list[sqlite3.Row]:
        return self._query("SELECT * FROM stages ORDER BY started_at")

    def set_stage(self, name: str, state: str, detail: dict[str, Any] | None = None) -> None:
        now = time.time()
        with self._tx() as conn:
            if state == "running":
                conn.execute(
                    "INSERT INTO stages (name, state, started_at, detail) VALUES (?, 'running', ?, '{}')"
                    " ON CONFLICT(name) DO UPDATE SET state='running', started_at=excluded.started_at,"
                    " finished_at=NULL", (name, now))
            else:
                conn.execute("UPDATE stages SET state = ?, finished_at = ?, detail = ? WHERE name = ?",
                             (state, now, json.dumps(detail or {}, sort_keys=True), name))

    # --- usage and spend ----------------------------------------------------------------------------------------

    def add_usage(self, stage: str, model: str, usage: Usage) -> None:
        with self._tx() as conn:
            _insert_usage(conn, stage, model, usage, time.time())

    def usage(self, stage: str | None = None) -> UsageTotals:
        where, args = ("WHERE stage = ?", (stage,)) if stage else ("", ())
        row = self._query(
            "SELECT COALESCE(SUM(input_tokens),0) i, COALESCE(SUM(output_tokens),0) o,"
            f" COALESCE(SUM(trained_tokens),0) t, COALESCE(SUM(usd),0) u FROM usage {where}", args)[0]
        return UsageTotals(row["i"], row["o"], row["t"], float(row["u"]))

    def usage_by_stage(self) -> dict[str, UsageTotals]:
        rows = self._query("SELECT stage, SUM(input_tokens) i, SUM(output_tokens) o, SUM(trained_tokens) t,"
                           " SUM(usd) u FROM usage GROUP BY stage")
        return {r["stage"]: UsageTotals(r["i"], r["o"], r["t"], float(r["u"])) for r in rows}


def _insert_usage(conn: sqlite3.Connection, stage: str, model: str, usage: Usage, at: float) -> None:
    conn.execute("INSERT INTO usage (stage, provider, model, input_tokens, output_tokens, trained_tokens, usd, at)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (stage, usage.provider, model, usage.input_tokens,
                                                      usage.output_tokens, usage.trained_tokens, usage.usd, at))


def _batch(row: sqlite3.Row) -> BatchRecord:
    return BatchRecord(key=row["key"], provider=row["provider"], stage=row["stage"], subject=row["subject"],
                       tag=row["tag"], state=row["state"], batch_id=row["batch_id"], status=row["status"],
                       requests=row["requests"], error=row["error"], created_at=row["created_at"])


def _deployment(row: sqlite3.Row) -> DeploymentRecord:
    return DeploymentRecord(name=row["name"], cell=row["cell"], provider=row["provider"], model=row["model"],
                            inference_model=row["inference_model"], state=row["state"], error=row["error"],
                            created_at=row["created_at"], ready_at=row["ready_at"], deleted_at=row["deleted_at"],
                            hosting_usd=float(row["hosting_usd"]))


def _job(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        cell=row["cell"], provider=row["provider"], base_model=row["base_model"], state=row["state"],
        status=row["status"], job_id=row["job_id"], fine_tuned_model=row["fine_tuned_model"],
        training_file=row["training_file"], metadata=json.loads(row["metadata"]),
        hyperparameters=json.loads(row["hyperparameters"]), trained_tokens=row["trained_tokens"],
        error=row["error"], events=json.loads(row["events"] or "[]"), created_at=row["created_at"],
        updated_at=row["updated_at"])
