"""The simulated lab behind the local server: wiring for the in-process `sim` provider and `slkit serve`.

State lives under one folder: `server/` (files, jobs, batches) and `lab/` (family weights, fine-tuned models), so
fine-tuned models and jobs survive restarts and are shared by every run that uses the same folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kit.errors import LedgerError
from kit.sim.faults import FaultConfig
from kit.sim.server import LocalServer, serve
from kit.sim.store import Store

SERVER_DIR = "server"
LAB_DIR = "lab"


def _parts(state_dir: Path) -> tuple[Any, Store]:
    from kit.sim.lab import Lab

    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        return Lab(state_dir / LAB_DIR), Store(state_dir / SERVER_DIR)
    except OSError as err:
        raise LedgerError(f"cannot write the lab's state to {state_dir} ({err.strerror}); choose a writable "
                          "folder with --data-dir or providers.<name>.data_dir") from None


def start_lab_server(state_dir: Path, *, faults: dict[str, Any] | None = None) -> LocalServer:
    """Start the local server in-process on a free port of 127.0.0.1; stop it with `.stop()`."""
    engine, store = _parts(state_dir)
    return LocalServer(engine, store, faults=FaultConfig(**faults) if faults else None).start()


def serve_lab(state_dir: Path, *, port: int) -> None:
    """Serve the lab in the foreground until interrupted."""
    engine, store = _parts(state_dir)
    serve(engine, store, port=port)
