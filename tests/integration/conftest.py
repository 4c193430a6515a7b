"""The real control plane for integration tests: one per session, the chart installed once, a namespace per test.

Nothing here talks to the user's cluster: every kubectl/helm call gets the test kubeconfig explicitly.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, load_script

pytestmark = pytest.mark.integration


cluster_mod = load_script("labrador_hack_cluster", "hack/cluster.py")


#: runs after every other integration test: it judges the chart's RBAC by what they made the operator do
LAST = "test_rbac_audit.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
    last = [i for i in items if i.fspath.basename == LAST]
    if last:
        rest = [i for i in items if i.fspath.basename != LAST]
        end = max((n for n, i in enumerate(rest) if "integration" in str(i.fspath)), default=len(rest) - 1) + 1
        items[:] = rest[:end] + last + rest[end:]


@dataclass
class Kube:
    """kubectl and helm bound to one test control plane."""

    cluster: Any  # hack/cluster.py Cluster

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.cluster.env(),
            "HELM_CACHE_HOME": str(self.cluster.dir / "helm" / "cache"),
            "HELM_CONFIG_HOME": str(self.cluster.dir / "helm" / "config"),
            "HELM_DATA_HOME": str(self.cluster.dir / "helm" / "data"),
        }

    def run(
        self, tool: str, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.cluster.bin_dir / tool), *args]
        if tool == "kubectl":
            argv.insert(1, f"--kubeconfig={self.cluster.kubeconfig}")
        p = subprocess.run(argv, input=input, capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, **kw)

    def helm(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("helm", f"--kubeconfig={self.cluster.kubeconfig}", *args, **kw)

    def apply(
        self, obj: dict[str, Any] | list[dict[str, Any]], namespace: str, *extra: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        docs = obj if isinstance(obj, list) else [obj]
        return self.kubectl("apply", "-n", namespace, *extra, "-f", "-", input=yaml.safe_dump_all(docs), check=check)

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        ns = ["-n", namespace] if namespace else []
        return json.loads(self.kubectl("get", resource, name, *ns, "-o", "json").stdout)


def wait_for(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.25, what: str = "") -> Any:
    """Poll until predicate() is truthy; fail with ``what`` (and the last value) at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}: last={last!r}")


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    return cluster_mod.build_binaries()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, bin_dir: Path) -> Iterator[Any]:
    """One real control plane for the whole session (etcd, apiserver, controller-manager, scheduler, kwok)."""
    c = cluster_mod.start(
        tmp_path_factory.mktemp("cluster"),
        nodes=2,
        bin_dir=bin_dir,
        audit_groups=(f"system:serviceaccounts:{RELEASE_NS}",),  # the operator's requests (test_rbac_audit.py)
    )
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def kube(cluster: Any) -> Kube:
    return Kube(cluster)


RELEASE = "labrador"
RELEASE_NS = "labrador-system"
INSTALL_VALUES = ("--set", "operator.peering.enabled=true", "--set", "kserve.enabled=true")


def install_chart(kube: Kube) -> Kube:
    """The chart (CRDs, RBAC, operator Deployment) installed, CRDs established. Peering and KServe on, so the chart
    grants what the peering tests' replicas and the InferenceService tests use (test_rbac_audit.py holds the chart
    to exactly that)."""
    kube.helm("install", RELEASE, str(ROOT / "charts" / "labrador"), *INSTALL_VALUES, "-n", RELEASE_NS,
              "--create-namespace", "--wait=false", timeout=180)  # fmt: skip
    for crd in ("taxonomies", "syntheticdatajobs", "finetunejobs"):
        kube.kubectl("wait", "--for=condition=Established", f"crd/{crd}.labrador.dev", "--timeout=60s")
    return kube


def install_kserve_crd(kube: Kube) -> None:
    """KServe's real InferenceService CRD (v0.16.0, from the Go module proxy: hack/kserve-crd.sh), established. Only
    the CRD: no KServe controller runs, the tests write an InferenceService's status as it would. No skip: without
    the Go proxy this fails, saying so."""
    out = subprocess.run(["bash", str(ROOT / "hack" / "kserve-crd.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(f"hack/kserve-crd.sh could not fetch KServe's CRD (Go module proxy?):\n{out.stderr}")
    crd = Path(out.stdout.strip().splitlines()[-1]) / "crds" / "serving.kserve.io_inferenceservices.yaml"
    # ~1 MB: server-side apply (a client-side apply's last-applied annotation would exceed its 256 KiB limit)
    kube.kubectl("apply", "--server-side", "-f", str(crd))
    # polled, not `kubectl wait`: right after the apply the CRD has no status.conditions yet and kubectl wait errors
    wait_for(
        lambda: any(
            c.get("type") == "Established" and c.get("status") == "True"
            for c in kube.get("crd", "inferenceservices.serving.kserve.io").get("status", {}).get("conditions") or []
        ),
        timeout=60,
        what="KServe's InferenceService CRD established",
    )


@pytest.fixture(scope="session")
def installed(kube: Kube) -> Kube:
    """KServe's CRD and the chart installed once."""
    install_kserve_crd(kube)
    return install_chart(kube)


@contextlib.contextmanager
def scratch_namespace(kube: Kube, prefix: str) -> Iterator[str]:
    """A fresh namespace ``<prefix>-<random>`` with its default ServiceAccount, deleted (without waiting) after."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", name)
    wait_for(
        lambda: kube.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
        timeout=30,
        what="default ServiceAccount",
    )
    try:
        yield name
    finally:
        kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    """A namespace the in-process operator watches (``t-*``)."""
    with scratch_namespace(kube, "t") as name:
        yield name


def one_phase_job(name: str, annotations: dict[str, str] | None = None, **run_policy: Any) -> dict[str, Any]:
    """A FineTuneJob with one phase on explicit data, one pod, evaluation off; ``annotations`` steer kwok."""
    return {
        "apiVersion": "labrador.dev/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": "hf://org/model"},
            "data": {"knowledgePath": "data/k.jsonl"},
            "phases": [{"name": "only", "dataset": "knowledge"}],
            "resources": {
                "nodes": 1,
                "gpusPerNode": 1,
                "cpu": "1",
                "memory": "1Gi",
                "podMetadata": {"annotations": annotations or {}},
            },
            "evaluation": {"enabled": False},
            "runPolicy": run_policy,
        },
    }


@pytest.fixture(scope="session")
def operator_kubeconfig(installed: Kube, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig for the chart's ServiceAccount: the operator runs with exactly the chart's RBAC."""
    return service_account_kubeconfig(installed, tmp_path_factory.mktemp("operator") / "kubeconfig")


def service_account_kubeconfig(kube: Kube, path: Path) -> Path:
    """``path``: a kubeconfig with a token of the chart's ServiceAccount (the chart installed in ``kube``)."""
    token = kube.kubectl("create", "token", "labrador", "-n", RELEASE_NS, "--duration=4h").stdout.strip()
    cluster_mod.write_kubeconfig(path, kube.cluster.server, kube.cluster.ca, token, user="labrador")
    return path


class InProcessOperator:
    """The operator (``labrador_operator.main.run``) in a thread of the test process, with a runtime of its own; every
    ERROR logged meanwhile (kopf logs a failed handler's traceback so) is kept for the session's end."""

    def __init__(self, config: Any) -> None:
        import logging
        import threading

        from labrador_operator.controller.runtime import Runtime

        self.config, self.runtime = config, Runtime(config)
        self.ready, self.stop = threading.Event(), threading.Event()
        self.exception: BaseException | None = None
        self.errors: list[str] = []
        outer = self

        class Errors(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.levelno >= logging.ERROR and record.name.startswith(("kopf", "labrador")):
                    outer.errors.append(self.format(record))

        self.handler = Errors()
        self.handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        self.thread = threading.Thread(target=self._run, name="operator", daemon=True)

    def _run(self) -> None:
        from labrador_operator import main

        try:
            main.run(self.config, runtime=self.runtime, ready_flag=self.ready, stop_flag=self.stop)
        except BaseException as e:  # reported at the session's end
            self.exception = e
            self.ready.set()

    def __enter__(self) -> InProcessOperator:
        import logging

        logging.getLogger().addHandler(self.handler)
        self.thread.start()
        assert self.ready.wait(60) and self.exception is None, self.exception  # startup handlers done
        return self

    def __exit__(self, *exc: object) -> None:
        import logging

        self.stop.set()
        self.thread.join(60)
        logging.getLogger().removeHandler(self.handler)


@pytest.fixture(scope="session")
def operator(installed: Kube, operator_kubeconfig: Path) -> Iterator[InProcessOperator]:
    """The operator in-process, as the chart's ServiceAccount, on the ``t-*`` namespaces; pods run ~1 s on kwok.
    Yielded once it has reconciled a first object: a Taxonomy in a fresh ``t-`` namespace has its sync Job in the
    operator's cache and a status written by it (the watches of parents and children are established)."""
    from labrador_operator.controller.config import OperatorConfig, WebhookConfig
    from labrador_operator.settings import Settings

    os.environ["KUBECONFIG"] = str(operator_kubeconfig)  # kopf's login reads it
    # admission webhooks on 127.0.0.1 with openssl-made certificates (kopf's own fail on current OpenSSL)
    certs = cluster_mod.make_serving_cert(operator_kubeconfig.parent / "webhook", ["IP:127.0.0.1"])
    config = OperatorConfig(
        settings=Settings(
            pod_annotations={"labrador.dev/kwok-run-duration": "1s"}, progress_interval_seconds=1, kserve=True
        ),
        namespaces=("t-*",),
        liveness=None,
        metrics_port=0,
        webhook=WebhookConfig(port=cluster_mod.free_port(), cert_dir=certs, addr="127.0.0.1", host="127.0.0.1"),
        kubeconfig=str(operator_kubeconfig),
    )
    with InProcessOperator(config) as op:
        with scratch_namespace(installed, "t") as ns:
            item = {"key": "qna.yaml", "path": "knowledge/probe/qna.yaml"}
            probe = {
                "apiVersion": "labrador.dev/v1alpha1", "kind": "Taxonomy", "metadata": {"name": "probe"},
                "spec": {"source": {"configMap": {"name": "probe", "items": [item]}}},
            }  # fmt: skip
            installed.apply(probe, ns)
            try:
                wait_for(
                    lambda: (
                        op.runtime.cache.children((ns, "taxonomy", "probe")).jobs
                        and installed.get("taxonomy", "probe", ns).get("status", {}).get("phase")
                    ),
                    timeout=180,
                    what="the operator's first reconcile (sync Job cached, status written)",
                )
            except AssertionError as e:
                raise AssertionError(f"{e}; cache {op.runtime.cache.sizes()}; errors {op.errors}") from None
        yield op
    assert op.exception is None, op.exception
    assert not [e for e in op.errors if "Traceback" in e], "\n".join(op.errors)


def bind_claim(kube: Kube, namespace: str, claim: str, access: str = "ReadWriteMany") -> None:
    """A claim bound to a statically provisioned hostPath volume (no provisioner here); waits until Bound."""
    pv = f"{claim}-{namespace}"
    kube.apply(
        [
            {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
             "spec": {"capacity": {"storage": "10Gi"}, "accessModes": [access], "storageClassName": "",
                      "persistentVolumeReclaimPolicy": "Delete", "hostPath": {"path": f"/tmp/labrador-test-pv/{pv}"},
                      "claimRef": {"namespace": namespace, "name": claim}}},
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim},
             "spec": {"accessModes": [access], "storageClassName": "", "volumeName": pv,
                      "resources": {"requests": {"storage": "10Gi"}}}},
        ],
        namespace,
    )  # fmt: skip
    wait_for(lambda: kube.get("pvc", claim, namespace).get("status", {}).get("phase") == "Bound",
             timeout=30, what=f"claim {claim} bound")  # fmt: skip


@pytest.fixture
def workspace(kube: Kube, namespace: str) -> str:
    """The workspace claim of the namespace."""
    bind_claim(kube, namespace, "labrador-workspace")
    return "labrador-workspace"
