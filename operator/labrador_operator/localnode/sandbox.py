"""Runs inside ``unshare --mount --uts --propagation private`` and becomes the container process (stdlib only).

Started as ``python -I sandbox.py FD``: reads a JSON spec on stdin, bind-mounts each volume onto its container
path (read-only where asked), sets the hostname, drops to the pod's user and groups, sets no_new_privs, then
``execvpe``s the container's argv with its environment — never through a shell. Any failure before the exec is
written to FD (close-on-exec otherwise), so the runner can tell "could not start" from "exited".
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import sys

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
PR_SET_NO_NEW_PRIVS = 38

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str | None, target: str, flags: int) -> None:
    src = source.encode() if source else None
    if _libc.mount(src, target.encode(), None, ctypes.c_ulong(flags), None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source or ''} -> {target}: {os.strerror(err)}")


def _mount_point(target: str, is_file: bool) -> None:
    """Create a missing mount point (on the host's filesystem: an empty directory or file)."""
    if is_file:
        os.makedirs(os.path.dirname(target) or "/", exist_ok=True)
        if not os.path.exists(target):
            with open(target, "a"):
                pass
    else:
        os.makedirs(target, exist_ok=True)


def setup(spec: dict) -> None:
    for m in sorted(spec["mounts"], key=lambda m: m["target"].rstrip("/").count("/")):
        _mount_point(m["target"], m["file"])
        _mount(m["source"], m["target"], MS_BIND | MS_REC)
        if m["readOnly"]:
            _mount(None, m["target"], MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    if spec.get("hostname"):
        socket.sethostname(spec["hostname"])
    cwd = spec.get("cwd") or "/"
    os.makedirs(cwd, exist_ok=True)
    if spec.get("gid") is not None:
        os.setgroups(spec.get("groups") or [])
        os.setgid(spec["gid"])
    if spec.get("uid") is not None:
        os.setuid(spec["uid"])
    os.chdir(cwd)
    if spec.get("noNewPrivs") and _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def main() -> None:
    report = int(sys.argv[1])
    os.set_inheritable(report, False)  # closes on exec: EOF without data means the exec succeeded
    try:
        spec = json.loads(sys.stdin.buffer.read())
        setup(spec)
        os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
    except BaseException as e:  # report and exit; the runner turns this into the container's start error
        code = getattr(e, "errno", None)
        msg = f"{type(e).__name__}: {e}" if code != errno.ENOENT else f"executable not found: {e}"
        os.write(report, msg.encode(errors="replace")[:4000])
        os._exit(128)


if __name__ == "__main__":
    main()
