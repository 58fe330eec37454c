"""Persistent state of the local server: files, fine-tuning jobs, their events and checkpoints, and batches.

Layout under `root`:

    files/<id>.json + files/<id>.bin        metadata and raw bytes (bytes written first)
    jobs/<id>.json                          the job object
    jobs/<id>.events.jsonl                  append-only event log (a torn last line is ignored)
    jobs/<id>.checkpoints.json              checkpoint objects
    jobs/<id>.lock, batches/<id>.lock       ownership locks (fcntl.flock) held while a server drives the object
    batches/<id>.json                       the batch object

JSON documents are replaced atomically (temp file + os.replace) so a killed process leaves either the old or the
new version. Keys starting with "_" are private to the server and are stripped from API responses.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kit.fileio import write_atomic

Obj = dict[str, Any]
ID_HEX_CHARS = 24
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,96}$")
_SEQ_KEY = "_seq"


def new_id(prefix: str) -> str:
    """An OpenAI-style id: `file-…`, `ftjob-…`, `batch_…` followed by 24 hex characters."""
    return f"{prefix}{secrets.token_hex(ID_HEX_CHARS // 2)}"


def is_safe_id(object_id: str) -> bool:
    """Ids become file names; anything but letters, digits, `_` and `-` is refused (no path traversal)."""
    return bool(_SAFE_ID.match(object_id))


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _load(path: Path) -> Any | None:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None


class OwnerLock:
    """An exclusive, non-blocking flock on one object; released explicitly or when the process dies."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def try_lock(path: Path) -> OwnerLock | None:
    """Take the lock at `path`, or return None when another holder (process or open file) has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return OwnerLock(fd)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """A blocking flock, so read-modify-write cycles of servers sharing a store do not interleave."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class JsonCollection:
    """JSON objects keyed by their `id`, one file each, in one folder."""

    def __init__(self, directory: Path, lock: threading.RLock) -> None:
        self.directory = directory
        self._lock = lock

    def path(self, object_id: str, suffix: str = ".json") -> Path:
        if not is_safe_id(object_id):
            raise KeyError(object_id)
        return self.directory / f"{object_id}{suffix}"

    def put(self, obj: Obj) -> Obj:
        obj.setdefault(_SEQ_KEY, time.time_ns())
        with self._lock:
            write_atomic(self.path(obj["id"]), _dump(obj), durable=False)
        return obj

    def get(self, object_id: str) -> Obj | None:
        if not is_safe_id(object_id):
            return None
        found = _load(self.path(object_id))
        return found if isinstance(found, dict) else None

    def all(self) -> list[Obj]:
        """Every object, oldest first."""
        found = (_load(p) for p in self.directory.glob("*.json") if is_safe_id(p.stem))
        objects = [obj for obj in found if isinstance(obj, dict) and "id" in obj]
        return sorted(objects, key=lambda obj: (obj.get(_SEQ_KEY, 0), obj["id"]))

    def update(self, object_id: str, change: Callable[[Obj], Obj | None]) -> Obj | None:
        """Apply `change` to a copy of the object under the thread and cross-process locks; `change` returns None to
        leave the object as it is (it must not call `update` itself).

        Returns the stored object after the call (None if it does not exist or was left unchanged).
        """
        with self._lock, _exclusive(self.directory / ".update.lock"):
            current = self.get(object_id)
            if current is None:
                return None
            changed = change(dict(current))
            if changed is None:
                return None
            write_atomic(self.path(object_id), _dump(changed), durable=False)
            return changed

    def delete(self, object_id: str) -> bool:
        with self._lock:
            try:
                self.path(object_id).unlink()
            except (FileNotFoundError, KeyError):
                return False
            return True

    def lock(self, object_id: str) -> OwnerLock | None:
        return try_lock(self.path(object_id, ".lock"))


class Store:
    """The server's state on disk; safe to share between threads, and between processes for ownership locks."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.RLock()
        self.files = JsonCollection(self.root / "files", self._lock)
        self.jobs = JsonCollection(self.root / "jobs", self._lock)
        self.batches = JsonCollection(self.root / "batches", self._lock)
        for collection in (self.files, self.jobs, self.batches):
            collection.directory.mkdir(parents=True, exist_ok=True)

    # files ---------------------------------------------------------------------------------------------------

    def create_file(self, data: bytes, filename: str, purpose: str) -> Obj:
        """Store new file bytes and return its OpenAI-shaped file object (status `processed`)."""
        meta: Obj = {"id": new_id("file-"), "object": "file", "bytes": len(data), "created_at": int(time.time()),
                     "filename": filename, "purpose": purpose, "status": "processed", "expires_at": None,
                     "status_details": None}
        return self.put_file(meta, data)

    def put_file(self, meta: Obj, data: bytes) -> Obj:
        """Store a file's bytes, then its metadata (so metadata on disk always has its bytes)."""
        with self._lock:
            write_atomic(self.files.path(meta["id"], ".bin"), data)
            return self.files.put(meta)

    def file_bytes(self, file_id: str) -> bytes | None:
        if self.files.get(file_id) is None:
            return None
        try:
            return self.files.path(file_id, ".bin").read_bytes()
        except FileNotFoundError:
            return None

    def delete_file(self, file_id: str) -> bool:
        with self._lock:
            deleted = self.files.delete(file_id)
            if deleted:
                self.files.path(file_id, ".bin").unlink(missing_ok=True)
            return deleted

    # job events and checkpoints --------------------------------------------------------------------------------

    def add_event(self, job_id: str, event: Obj) -> Obj:
        """Append one event to the job's log."""
        line = _dump(event) + b"\n"
        with self._lock, open(self.jobs.path(job_id, ".events.jsonl"), "ab") as handle:
            handle.write(line)
        return event

    def events(self, job_id: str) -> list[Obj]:
        """The job's events, oldest first."""
        try:
            raw = self.jobs.path(job_id, ".events.jsonl").read_bytes()
        except (FileNotFoundError, KeyError):
            return []
        return [event for event in map(_parse_line, raw.splitlines()) if event is not None]

    def put_checkpoints(self, job_id: str, checkpoints: list[Obj]) -> None:
        with self._lock:
            write_atomic(self.jobs.path(job_id, ".checkpoints.json"), _dump(checkpoints), durable=False)

    def checkpoints(self, job_id: str) -> list[Obj]:
        if not is_safe_id(job_id):
            return []
        found = _load(self.jobs.path(job_id, ".checkpoints.json"))
        return found if isinstance(found, list) else []


def _parse_line(line: bytes) -> Obj | None:
    try:
        parsed = json.loads(line)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def public(obj: Obj) -> Obj:
    """The object as the API shows it: private `_` keys removed."""
    return {key: value for key, value in obj.items() if not key.startswith("_")}
