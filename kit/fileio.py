"""Atomic file writes (readers see the old content or the new, never a torn file, whatever crashes when), and
cached reads of the user's input files (parsed once per path, size and modification time)."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kit.errors import DataError

T = TypeVar("T")


def write_atomic(path: Path, data: str | bytes, *, durable: bool = True) -> None:
    """Write via a temp file in the same folder and os.replace; `durable` also fsyncs before the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> bytes:
    """Write rows as JSON Lines atomically; return the exact bytes written."""
    data = jsonl_bytes(rows)
    write_atomic(path, data)
    return data


def read_parsed(path: Path, parse: Callable[[Path, bytes], T], missing: Callable[[Path], Exception]) -> T:
    """`parse(path, content)` of the file, cached until the file changes; `missing(path)` is raised when it
    cannot be read. `parse` must be a module-level function (it is part of the cache key)."""
    try:
        stat = path.stat()
    except OSError:
        raise missing(path) from None
    return _parsed(path.resolve(), stat.st_size, stat.st_mtime, parse)


@functools.lru_cache(maxsize=32)
def _parsed(path: Path, size: int, mtime: float, parse: Callable[[Path, bytes], Any]) -> Any:
    return parse(path, path.read_bytes())


def jsonl_objects(path: Path, content: bytes, what: str) -> list[tuple[int, Any]]:
    """(line number, parsed JSON) of every non-blank line; DataError naming the line when one is not JSON."""
    rows: list[tuple[int, Any]] = []
    for number, line in enumerate(content.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError:
            raise DataError(f"{path}: line {number} is not JSON: give one {what} per line") from None
    return rows
