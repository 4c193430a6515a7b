"""Pod status shapes as the kubelet writes them (pure functions)."""

from __future__ import annotations

import datetime as dt
from typing import Any

Obj = dict[str, Any]
RUNTIME = "labrador-local"


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind: str, ok: bool, reason: str | None = None, message: str | None = None) -> Obj:
    c: Obj = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None, "lastTransitionTime": now()}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def waiting(reason: str, message: str | None = None) -> Obj:
    w: Obj = {"reason": reason}
    if message:
        w["message"] = message
    return {"waiting": w}


def running(started_at: str) -> Obj:
    return {"running": {"startedAt": started_at}}


def terminated(exit_code: int, started_at: str | None, message: str = "", reason: str | None = None) -> Obj:
    t: Obj = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "finishedAt": now(),
    }
    if started_at:
        t["startedAt"] = started_at
    if message:
        t["message"] = message
    return {"terminated": t}


def container_status(c: Obj, state: Obj, restarts: int = 0, last: Obj | None = None, pid: int | None = None) -> Obj:
    is_running = "running" in state
    out: Obj = {
        "name": c["name"],
        "image": c.get("image", ""),
        "imageID": "",
        "ready": is_running,
        "started": is_running,
        "restartCount": restarts,
        "state": state,
        "lastState": last or {},
    }
    if pid is not None:
        out["containerID"] = f"{RUNTIME}://{pid}"
    return out


def exit_code(returncode: int) -> int:
    """Popen's returncode as a container exit code (128 + signal for a signalled process)."""
    return 128 - returncode if returncode < 0 else returncode
