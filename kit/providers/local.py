"""The local lab server behind `sim` providers: one in-process server per state folder and fault settings, shared
by every `sim` provider of a process (whatever dialect each speaks), stopped when the last one closes."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_servers: dict[str, tuple[Any, int]] = {}


def dialect_urls(root: str) -> dict[str, str | None]:
    """Where each dialect lives on a local server rooted at `root` (http://127.0.0.1:<port>)."""
    return {"openai": f"{root}/v1", "azure": root, "azure_management": root, "together": f"{root}/together/v1",
            "fireworks": f"{root}/fireworks", "fireworks_inference": f"{root}/fireworks/inference/v1",
            "anthropic": f"{root}/anthropic"}


def acquire_local_server(state_dir: Path, faults: dict[str, Any] | None) -> tuple[str, Callable[[], None]]:
    """(root URL, release) of the shared server for this state folder and faults, starting it if needed."""
    key = json.dumps([str(state_dir.resolve()), faults], sort_keys=True)
    with _lock:
        if key not in _servers:
            from kit.sim.service import start_lab_server

            _servers[key] = (start_lab_server(state_dir, faults=faults), 0)
        server, users = _servers[key]
        _servers[key] = (server, users + 1)
    return str(server.base_url).removesuffix("/v1"), lambda: _release(key)


def _release(key: str) -> None:
    with _lock:
        server, users = _servers[key]
        if users > 1:
            _servers[key] = (server, users - 1)
            return
        del _servers[key]
    server.stop()
