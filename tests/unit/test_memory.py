"""memory.trim(): freed heap between live objects goes back to the system (glibc)."""

from __future__ import annotations

import platform
import threading
from pathlib import Path

from labrador_operator import memory


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_trim_returns_the_holes_a_burst_leaves() -> None:
    """A burst in a worker thread (its own malloc arena) leaves every 64th block alive: nothing is at the arena's
    top, so nothing goes back by itself until trim(). Without glibc, trim() is a no-op that says so."""
    if platform.libc_ver()[0] != "glibc":
        assert memory.trim() is False
        return
    kept: list[bytes] = []

    def burst() -> None:
        junk = [bytes(2048 + i % 7) for i in range(60_000)]  # ~120 MB of >512-byte objects (malloc, not pymalloc)
        kept.extend(junk[::64])
        del junk

    t = threading.Thread(target=burst)
    t.start()
    t.join()
    before = _rss_mb()
    assert memory.trim()
    after = _rss_mb()
    assert before - after > 50, (before, after)
    assert len(kept) == 938
