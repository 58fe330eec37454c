"""Named crash points for crash-safety tests: with SLKIT_CRASH_AT=<name>, the process kills itself there.

Only the tests set the variable; it exists so "killed between recording intent and create" is exact, not timed.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "SLKIT_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
