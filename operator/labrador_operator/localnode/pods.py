"""One pod's life on the local node: admit, materialise volumes, run init containers then the container as
local processes in their own mount namespace, report status like the kubelet, stop on deletion."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from labrador_operator.localnode import sandbox
from labrador_operator.localnode.admission import refusals
from labrador_operator.localnode.env import NotReady, PodContext, Unsupported, container_argv, container_env
from labrador_operator.localnode.kube import ApiError, pod_path
from labrador_operator.localnode.status import (
    condition,
    container_status,
    exit_code,
    now,
    running,
    terminated,
    waiting,
)
from labrador_operator.localnode.volumes import Mount, Owner, PodVolumes, Volume, container_mounts

if TYPE_CHECKING:
    from labrador_operator.localnode.main import Agent

log = logging.getLogger("labrador.local.pod")
Obj = dict[str, Any]
T = TypeVar("T")

ANNOTATION_LOG_PATH = "labrador.dev/log-path"
REFUSED_CONDITION = "labrador.dev/LocalRunnerAdmission"
MAX_MESSAGE = 4096  # the kubelet's limit for a termination message file
FALLBACK_LINES, FALLBACK_BYTES = 80, 2048  # FallbackToLogsOnError: the log's tail
MAX_BACKOFF = 300.0
RETRY_SECONDS = 2.0
#: set to the pod IP in every container (the pod's own env may override it)
METRICS_ADDR_ENV = "LABRADOR_METRICS_ADDR"


@dataclass
class Identity:
    uid: int | None = None
    gid: int | None = None
    groups: list[int] = field(default_factory=list)
    no_new_privs: bool = False

    @property
    def home(self) -> str:
        if self.uid is None:
            return os.environ.get("HOME", "/")
        with contextlib.suppress(KeyError):
            home = pwd.getpwuid(self.uid).pw_dir
            if os.path.isdir(home):
                return home
        return "/"


def identity(pod: Obj, c: Obj, honour: bool = True) -> Identity:
    """runAsUser/runAsGroup/fsGroup/supplementalGroups (container over pod), as the runtime applies them;
    ``honour=False`` (``--run-as-agent-user``) or a non-root agent runs containers as the agent's own user."""
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    sc = {**psc, **(c.get("securityContext") or {})}
    uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
    if uid is not None and gid is None:
        gid = 0
    groups = [g for g in [psc.get("fsGroup"), *(psc.get("supplementalGroups") or [])] if g is not None]
    if os.geteuid() != 0 or not honour:
        uid = gid = None
        groups = []
    return Identity(uid, gid, groups, no_new_privs=sc.get("allowPrivilegeEscalation") is False)


def hosts_file(pod: Obj, ip: str, hostname: str) -> str:
    """A kubelet-style managed /etc/hosts: localhost, the pod's own name on its IP, hostAliases."""
    spec, ns = pod.get("spec") or {}, pod["metadata"]["namespace"]
    names = [hostname]
    if spec.get("subdomain"):
        names.insert(0, f"{hostname}.{spec['subdomain']}.{ns}.svc.cluster.local")
    lines = [
        "# Kubernetes-managed hosts file (labrador-local).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{ip}\t{' '.join(names)}",
    ]
    for alias in spec.get("hostAliases") or []:
        lines.append(f"{alias['ip']}\t{' '.join(alias.get('hostnames') or [])}")
    return "\n".join(lines) + "\n"


class Stopped(Exception):
    """The pod is being stopped (deleted, node shutting down) while waiting."""


class PodWorker(threading.Thread):
    """Runs one pod to its end; ``observe`` feeds it newer versions of the pod from the watch."""

    def __init__(self, agent: Agent, pod: Obj) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod {meta['namespace']}/{meta['name']}", daemon=True)
        self.agent, self.pod = agent, pod
        self.uid, self.ns, self.pod_name = meta["uid"], meta["namespace"], meta["name"]
        self.stop_event = threading.Event()
        self.stop_reason: str | None = None
        self.grace = 30.0
        self.proc: subprocess.Popen[bytes] | None = None
        self.pod_ip: str | None = None
        self.start_time: str | None = None
        self.phase = "Pending"
        self.reason: str | None = None
        self.message: str | None = None
        self.conditions: dict[str, Obj] = {}
        self.statuses: dict[str, Obj] = {}
        self.volumes: dict[str, Volume] = {}
        self.has_slot = False
        self.pod_dir = agent.cfg.state_dir / "pods" / self.uid
        self.log_dir = agent.cfg.log_dir / self.ns / self.pod_name

    # --- inputs from the agent ---------------------------------------------------------------------------------
    def observe(self, pod: Obj) -> None:
        self.pod = pod
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            self.request_stop("deleted", float(grace))

    def request_stop(self, reason: str, grace: float) -> None:
        if self.stop_reason is None:
            self.stop_reason, self.grace = reason, grace
            self.stop_event.set()

    # --- the lifecycle -----------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._lifecycle()
        except Stopped:
            self._finish_stopped()
        except Unsupported as e:
            self._kill()
            self._refuse(str(e))
        except Exception as e:
            log.exception("pod %s/%s: runner error", self.ns, self.pod_name)
            self._kill()
            self._final("Failed", "LocalRunnerError", f"labrador-local failed to run the pod: {e}")
        finally:
            self._cleanup()
            if self.stop_reason == "deleted":
                self.agent.finalize_deletion(self.pod)
            self.agent.worker_done(self)

    def _lifecycle(self) -> None:
        problems = [*self.agent.host_refusals, *refusals(self.pod, self.agent.cfg.honour_users)]
        if problems:
            self._refuse("; ".join(problems))
            return
        self._wait_for_slot()
        self.pod_ip = self.agent.ips.acquire()
        if self.pod_ip is None:
            raise RuntimeError("no free pod IP in 127.0.0.2-254")
        self.start_time = now()
        spec = self.pod["spec"]
        inits, main = spec.get("initContainers") or [], spec["containers"][0]
        for c in inits:
            self.statuses[c["name"]] = container_status(c, waiting("PodInitializing"))
        first = "PodInitializing" if inits else "ContainerCreating"
        self.statuses[main["name"]] = container_status(main, waiting(first))
        self.conditions = {
            "PodReadyToStartContainers": condition("PodReadyToStartContainers", True),
            "Initialized": condition("Initialized", not inits, None if not inits else "ContainersNotInitialized"),
            "Ready": condition("Ready", False, "ContainersNotReady"),
            "ContainersReady": condition("ContainersReady", False, "ContainersNotReady"),
            "PodScheduled": condition("PodScheduled", True),
        }
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.agent.annotate(self.pod, {ANNOTATION_LOG_PATH: str(self.log_dir)})
        self._publish()
        main_id = identity(self.pod, main, self.agent.cfg.honour_users)
        owner_uid = main_id.uid
        fs_group = (spec.get("securityContext") or {}).get("fsGroup") if main_id.uid is not None else None
        volumes = PodVolumes(
            self._ctx(), self.pod_dir, self.agent.cfg.volume_root, self.agent.resolve,
            lambda ns, sa, aud, exp: self.agent.token(self.pod, sa, aud, exp), Owner(owner_uid, fs_group),
        )  # fmt: skip
        self.volumes = self._retry(main, volumes.prepare, "ContainerCreating")
        policy = spec.get("restartPolicy", "Always")
        for c in inits:
            if not self._run_with_policy(c, policy, init=True):
                self._final("Failed", None, f"init container {c['name']!r} failed")
                return
            self.statuses[c["name"]]["ready"] = True
        if inits:
            self.conditions["Initialized"] = condition("Initialized", True)
        ok = self._run_with_policy(main, policy, init=False)
        self._final("Succeeded" if ok else "Failed", None, None)

    def _wait_for_slot(self) -> None:
        while not self.agent.slots.acquire(timeout=0.5):
            if self.stop_event.is_set():
                raise Stopped
        self.has_slot = True

    def _ctx(self) -> PodContext:
        return PodContext(self.pod, self.agent.cfg.node_name, self.pod_ip or "", self.agent.cfg.host_ip,
                          self.agent.cfg.allocatable)  # fmt: skip

    def _retry(self, c: Obj, step: Callable[[], T], reason: str) -> T:
        """Run ``step`` until it stops raising NotReady (reported as the container's waiting reason)."""
        reported = None
        while True:
            if self.stop_event.is_set():
                raise Stopped
            try:
                return step()
            except NotReady as e:
                if str(e) != reported:
                    reported = str(e)
                    st = self.statuses[c["name"]]
                    st["state"] = waiting(reason, str(e))
                    self._publish()
                    self.agent.event(self.pod, "Failed", f"Error: {e}", warning=True)
            self.stop_event.wait(RETRY_SECONDS)

    def _run_with_policy(self, c: Obj, policy: str, init: bool) -> bool:
        """Run a container, restarting per restartPolicy; True when it ended successfully."""
        restarts = 0
        while True:
            code, term = self._run_once(c, restarts, init)
            if self.stop_event.is_set():
                raise Stopped
            if code == 0 and (init or policy != "Always"):
                return True
            if policy == "Never":
                return False
            restarts += 1
            delay = min(self.agent.cfg.restart_backoff * 2 ** (restarts - 1), MAX_BACKOFF)
            self.statuses[c["name"]] = container_status(
                c, waiting("CrashLoopBackOff", f"back-off {delay:.0f}s restarting failed container"), restarts, term
            )
            if not init:
                self._set_ready(False)
            self._publish()
            self.agent.event(self.pod, "BackOff", f"Back-off restarting container {c['name']}", warning=True)
            if self.stop_event.wait(delay):
                raise Stopped

    def _base_env(self, ident: Identity) -> dict[str, str]:
        env = dict(self.agent.cfg.base_env)
        env["HOME"] = ident.home
        env["HOSTNAME"] = self._hostname()
        env.update(self.agent.service_env)  # the kubernetes Service's variables, whatever enableServiceLinks says
        if self.pod_ip:
            # deviation: every pod shares the host's network, so workload metrics servers listen on the pod IP
            # only (labrador-trainer honours LABRADOR_METRICS_ADDR) instead of colliding on 0.0.0.0:<port>
            env[METRICS_ADDR_ENV] = self.pod_ip
        return env

    def _hostname(self) -> str:
        return ((self.pod["spec"].get("hostname") or self.pod_name)[:63]).rstrip("-.")

    def _run_once(self, c: Obj, restarts: int, init: bool) -> tuple[int, Obj]:
        name = c["name"]
        last = self.statuses[name].get("lastState") or {}
        ident = identity(self.pod, c, self.agent.cfg.honour_users)
        env = self._retry(c, lambda: container_env(self._ctx(), c, self._base_env(ident), self.agent.resolve),
                          "CreateContainerConfigError")  # fmt: skip
        argv = container_argv(c, env)
        cdir = self.pod_dir / "containers" / name
        cdir.mkdir(parents=True, exist_ok=True)
        term_file = cdir / "termination-log"
        term_file.write_bytes(b"")
        hosts = cdir / "hosts"
        hosts.write_text(hosts_file(self.pod, self.pod_ip or "", self._hostname()))
        for p in (term_file, hosts):
            if ident.uid is not None:
                os.chown(p, ident.uid, ident.gid or 0)
        hosts.chmod(0o644)
        mounts = container_mounts(c, self.volumes, env)
        mounts.append(Mount(str(term_file), c.get("terminationMessagePath") or "/dev/termination-log", False, True))
        mounts.append(Mount(str(hosts), "/etc/hosts", False, True))
        log_path = self.log_dir / f"{name}.log"
        spec = {
            "mounts": [m.wire() for m in mounts],
            "hostname": self._hostname(),
            "cwd": c.get("workingDir") or "/",
            "uid": ident.uid,
            "gid": ident.gid,
            "groups": ident.groups,
            "noNewPrivs": ident.no_new_privs,
            "argv": argv,
            "env": env,
        }
        started_at = now()
        start_error = self._spawn(spec, log_path)
        offset = log_path.stat().st_size if log_path.exists() else 0
        if start_error is not None:
            code, message, reason = 128, start_error, "StartError"
            log.warning("pod %s/%s container %s could not start: %s", self.ns, self.pod_name, name, start_error)
        else:
            assert self.proc is not None
            self.statuses[name] = container_status(c, running(started_at), restarts, last, self.proc.pid)
            if init:
                self.statuses[name]["ready"] = False
            else:
                self.phase = "Running"
                self._set_ready(True)
            self._publish()
            self.agent.event(self.pod, "Started", f"Started container {name} (pid {self.proc.pid}, {argv[0]})")
            while self.proc.poll() is None:
                if self.stop_event.wait(0.2):
                    self._kill()
                    break
            code = exit_code(self.proc.returncode)
            self._reap_group()
            message, reason = self._termination_message(c, term_file, log_path, offset, code), None
        term = terminated(code, started_at, message, reason)
        self.statuses[name] = container_status(c, term, restarts, last)
        self.statuses[name]["containerID"] = f"labrador-local://{self.proc.pid if self.proc else 0}"
        if not init:
            self._set_ready(False, "PodCompleted")
        self._publish()
        return code, term

    def _spawn(self, spec: Obj, log_path: Path) -> str | None:
        """Start the sandbox; None when the container's argv was exec'd, else why it could not start."""
        read_fd, write_fd = os.pipe()
        argv = ["unshare", "--mount", "--uts", "--propagation", "private", "--",
                sys.executable, "-I", sandbox.__file__, str(write_fd)]  # fmt: skip
        with open(log_path, "ab") as logf:
            try:
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=logf, stderr=logf, pass_fds=(write_fd,),
                    start_new_session=True, close_fds=True, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                )  # fmt: skip
            finally:
                os.close(write_fd)
        self._record_pid()
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(spec).encode())
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        chunks = []
        while chunk := os.read(read_fd, 4096):
            chunks.append(chunk)
        os.close(read_fd)
        if chunks:
            self.proc.wait()
            return b"".join(chunks).decode(errors="replace")
        return None

    def _record_pid(self) -> None:
        assert self.proc is not None
        self.pod_dir.mkdir(parents=True, exist_ok=True)
        record = {"pid": self.proc.pid, "start": process_start(self.proc.pid), "pod": f"{self.ns}/{self.pod_name}"}
        (self.pod_dir / "process.json").write_text(json.dumps(record))

    def _termination_message(self, c: Obj, term_file: Path, log_path: Path, offset: int, code: int) -> str:
        with contextlib.suppress(OSError):
            data = term_file.read_bytes()[:MAX_MESSAGE]
            if data:
                return data.decode(errors="replace")
        if code != 0 and c.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            with contextlib.suppress(OSError), open(log_path, "rb") as f:
                f.seek(offset)
                tail = b"\n".join(f.read().splitlines()[-FALLBACK_LINES:])[-FALLBACK_BYTES:]
                return tail.decode(errors="replace")
        return ""

    def _kill(self) -> None:
        """SIGTERM to the container's process group, SIGKILL after the grace period."""
        p = self.proc
        if p is None or p.poll() is not None:
            return
        self.agent.event(self.pod, "Killing", f"Stopping container (grace {self.grace:.0f}s)")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=max(self.grace, 0))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()

    def _reap_group(self) -> None:
        """Processes the container left behind die with it (the kubelet stops the whole cgroup)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    # --- status ------------------------------------------------------------------------------------------------
    def _set_ready(self, ok: bool, reason: str = "ContainersNotReady") -> None:
        for kind in ("Ready", "ContainersReady"):
            if (self.conditions.get(kind, {}).get("status") == "True") != ok or kind not in self.conditions:
                self.conditions[kind] = condition(kind, ok, None if ok else reason)

    def _status(self) -> Obj:
        spec = self.pod["spec"]
        init_names = [c["name"] for c in spec.get("initContainers") or []]
        st: Obj = {"phase": self.phase, "conditions": list(self.conditions.values()),
                   "hostIP": self.agent.cfg.host_ip, "hostIPs": [{"ip": self.agent.cfg.host_ip}]}  # fmt: skip
        if self.pod_ip:
            st["podIP"], st["podIPs"] = self.pod_ip, [{"ip": self.pod_ip}]
        if self.start_time:
            st["startTime"] = self.start_time
        if self.reason:
            st["reason"] = self.reason
        if self.message:
            st["message"] = self.message
        if init_names:
            st["initContainerStatuses"] = [self.statuses[n] for n in init_names if n in self.statuses]
        st["containerStatuses"] = [self.statuses[c["name"]] for c in spec["containers"] if c["name"] in self.statuses]
        return st

    def _publish(self, attempts: int = 1) -> None:
        for i in range(attempts):
            try:
                self.agent.kube.patch(pod_path(self.ns, self.pod_name, "status"),
                                      {"metadata": {"uid": self.uid}, "status": self._status()})  # fmt: skip
                return
            except ApiError as e:
                if e.status == 404 or (e.status == 409 and "uid" in e.body.lower()):  # deleted or replaced
                    self.request_stop("gone", 0)
                    return
                log.warning("pod %s/%s: status update failed: %s", self.ns, self.pod_name, e)
            except Exception as e:  # connection trouble: the next update carries the whole status again
                log.warning("pod %s/%s: status update failed: %s", self.ns, self.pod_name, e)
            time.sleep(min(2**i, 10))

    def _final(self, phase: str, reason: str | None, message: str | None, disruption: bool = False) -> None:
        self.phase, self.reason, self.message = phase, reason, message
        self._set_ready(False, "PodCompleted" if phase == "Succeeded" else "PodFailed")
        if disruption:
            self.conditions["DisruptionTarget"] = condition("DisruptionTarget", True, "TerminationByKubelet", message)
        self._publish(attempts=5)

    def _refuse(self, problems: str) -> None:
        message = f"labrador-local cannot run this pod faithfully: {problems}"
        log.warning("pod %s/%s refused: %s", self.ns, self.pod_name, problems)
        self.conditions = {
            REFUSED_CONDITION: condition(REFUSED_CONDITION, False, "Unsupported", message),
            "Ready": condition("Ready", False, "PodFailed"),
        }
        self.agent.event(self.pod, "Unsupported", message, warning=True)
        self._final("Failed", "Unsupported", message)

    def _finish_stopped(self) -> None:
        """After a stop: shutdown → Failed with DisruptionTarget; deletion → the container's outcome."""
        self._kill()
        for c in self.pod["spec"]["containers"] + (self.pod["spec"].get("initContainers") or []):
            st = self.statuses.get(c["name"])
            if st and "terminated" not in st["state"]:
                reason = "Error" if "running" in st["state"] else "ContainerStatusUnknown"
                st["state"] = terminated(137, None, "", reason)
                st["ready"] = st["started"] = False
        if self.stop_reason == "gone" or (self.stop_reason == "shutdown" and self.start_time is None):
            return  # gone, or never started here: left Pending for the next agent
        if self.stop_reason == "shutdown":
            self._final("Failed", "Terminated", "Pod was terminated because the labrador-local node agent stopped.",
                        disruption=True)  # fmt: skip
            return
        main = self.statuses.get(self.pod["spec"]["containers"][0]["name"], {})
        ok = main.get("state", {}).get("terminated", {}).get("exitCode") == 0
        self._final("Succeeded" if ok else "Failed", None, None)

    def _cleanup(self) -> None:
        if self.pod_ip:
            self.agent.ips.release(self.pod_ip)
        if self.has_slot:
            self.agent.slots.release()
        shutil.rmtree(self.pod_dir, ignore_errors=True)


def process_start(pid: int) -> str:
    """The process's start time in clock ticks (/proc/PID/stat field 22): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]
