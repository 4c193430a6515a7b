"""Hand freed heap back to the system.

CPython allocates objects over 512 bytes (dict tables, long lists and strings: most of a decoded watch event) with
the C library's malloc, from per-thread arenas that glibc returns to the system only from their top. After a burst —
a restart's listing, a thousand new jobs — most of that memory is free but still counted in RSS. glibc's
``malloc_trim(0)`` releases the free pages of every arena (madvise), without moving anything; it costs a few
milliseconds. Elsewhere (musl, macOS) this is a no-op.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from typing import Any

_libc: Any = None
_last = 0.0
_lock = threading.Lock()


def trim() -> bool:
    """Release free heap pages to the system; True when glibc did so."""
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    if _libc is None:
        try:
            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _libc = False
    if not _libc:
        return False
    return bool(_libc.malloc_trim(0))


def maybe_trim(min_gap: float = 5.0) -> bool:
    """trim() unless it ran less than ``min_gap`` s ago (callers: the work queue each time it drains, the sampler
    after each round)."""
    global _last
    with _lock:
        now = time.monotonic()
        if now - _last < min_gap:
            return False
        _last = now
    return trim()
