"""glibc malloc settings for a long-running server.

glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MB), so after the first
big JSON body or websocket buffer every later one comes from the main heap, where short-lived large blocks
interleave with long-lived small ones and the heap can only grow (bench/README.md "What grows"). A fixed
threshold keeps large blocks in mmap, returned to the OS on free. Operators' MALLOC_*_ variables win.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 128 * 1024  # glibc's initial default, kept fixed instead of sliding up
TRIM_THRESHOLD = 256 * 1024


def tune_glibc_malloc(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Fix glibc's mmap and trim thresholds. False (and nothing changed) off glibc or when the operator set
    MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the environment."""
    if not sys.platform.startswith("linux") or any(
        os.environ.get(v) for v in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 and mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
    if not ok:
        log.warning("mallopt refused the mmap/trim thresholds; running with glibc's defaults")
    return ok
