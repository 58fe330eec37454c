"""Keep numpy's OpenBLAS single-threaded while the lab runs.

The lab does many small matrix products from many server threads at once. Multi-threaded OpenBLAS then
oversubscribes the cores (measured: a fine-tune 10x slower on a busy 2-core machine). Like threadpoolctl, this
finds the OpenBLAS library numpy loaded and calls its `set_num_threads`; it is a best-effort no-op when the
library or the symbol is not found (other BLAS builds, other platforms). Setting OPENBLAS_NUM_THREADS=1 before
starting Python has the same effect.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
            "openblas_set_num_threads")
_LIBRARY_GLOBS = ("numpy.libs/*openblas*", "numpy/.dylibs/*openblas*")


def limit_threads(count: int) -> bool:
    """Ask numpy's OpenBLAS to use `count` threads; True when it was done."""
    setter = _setter()
    if setter is None:
        return False
    setter(ctypes.c_int(count))
    return True


@functools.lru_cache(maxsize=1)
def _setter() -> Callable[[ctypes.c_int], object] | None:
    site = Path(np.__file__).resolve().parent.parent
    for pattern in _LIBRARY_GLOBS:
        for path in sorted(site.glob(pattern)):
            try:
                library = ctypes.CDLL(str(path))
            except OSError:
                continue
            for name in _SETTERS:
                if hasattr(library, name):
                    setter: Callable[[ctypes.c_int], object] = getattr(library, name)
                    return setter
    log.debug("no OpenBLAS thread setter found; the lab's matrix products may use several threads")
    return None
