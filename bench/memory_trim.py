"""How much resident memory glibc's ``malloc_trim(0)`` gives back after a burst (controller/memory.py; the operator
calls it when its work queue drains and after each sampler round). Not a test: what it gives back depends on the
C library and the host, so it is measured here, in RSS before and after.

    PYTHONPATH=operator .venv/bin/python bench/memory_trim.py

A burst in a worker thread (its own malloc arena) leaves every 64th block alive, so nothing is at the arena's top
and nothing goes back by itself until trim().
"""

from __future__ import annotations

import os
import platform
import threading
from pathlib import Path

from labrador_operator.controller import memory


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    libc = " ".join(platform.libc_ver())
    print(f"host: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, libc {libc or 'unknown'}")
    kept: list[bytes] = []

    def burst() -> None:
        junk = [bytes(2048 + i % 7) for i in range(60_000)]  # ~120 MB of >512-byte objects (malloc, not pymalloc)
        kept.extend(junk[::64])
        del junk

    start = rss_mb()
    t = threading.Thread(target=burst)
    t.start()
    t.join()
    before = rss_mb()
    trimmed = memory.trim()
    after = rss_mb()
    print(f"rss: {start:.0f} MiB at start, {before:.0f} MiB after the burst ({len(kept)} blocks kept), "
          f"{after:.0f} MiB after trim() (returned {trimmed}): {before - after:.0f} MiB given back")  # fmt: skip


if __name__ == "__main__":
    main()
