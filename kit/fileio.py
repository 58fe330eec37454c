"""Atomic file writes: readers see the old content or the new, never a torn file, whatever crashes when."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


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
