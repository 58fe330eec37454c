"""Named crash points for crash-safety tests: with SLKIT_CRASH_AT=<name> (or <name>@<n>, the n-th time the point
is reached), the process kills itself there with SIGKILL.

Only tests set the variable; it makes "killed between recording intent and create" exact rather than timed.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

CRASH_ENV = "SLKIT_CRASH_AT"

_hits: Counter[str] = Counter()
_lock = threading.Lock()


def crash_point(name: str) -> None:
    wanted = os.environ.get(CRASH_ENV)
    if not wanted or not wanted.startswith(name):
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    with _lock:
        _hits[name] += 1
        reached = _hits[name] >= int(nth or 1)
    if reached:
        os.kill(os.getpid(), signal.SIGKILL)
