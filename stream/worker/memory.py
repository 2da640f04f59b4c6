"""glibc's malloc arenas for the worker process.

glibc gives threads that allocate at the same time arenas of their own, up to 8 per CPU; each
keeps the memory its thread freed for reuse by that arena only. The worker's threads (RocksDB's
flushes and compactions, librdkafka's, the model owner's and onnxruntime's pools) then leave tens
of MB free but resident across arenas, and RSS creeps up long after the tables' caches are full
(README, Benchmark: memory over time).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # glibc malloc.h
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``arenas`` for threads started from now on; True when done.
    Nothing when MALLOC_ARENA_MAX is set (the operator's choice, read by glibc at start) or the
    C library is not glibc (musl, macOS)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_ARENA_MAX, arenas) == 1
