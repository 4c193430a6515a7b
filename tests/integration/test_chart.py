"""The Helm chart against a fresh real control plane: lint, template, install, RBAC, upgrade, bad values."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.integration.conftest import Kube, cluster_mod, wait_for

CHART = ROOT / "charts" / "labrador"
NS = "labrador-system"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory, bin_dir: Path) -> Iterator[Kube]:
    """A control plane of its own: the chart is installed on a clean cluster and upgraded in place."""
    c = cluster_mod.start(tmp_path_factory.mktemp("chart-cluster"), nodes=0, bin_dir=bin_dir)
    try:
        yield Kube(c)
    finally:
        c.stop()


def test_lint_strict(kube: Kube) -> None:
    out = kube.helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in out.stdout


def _template(kube: Kube, *args: str) -> list[dict[str, Any]]:
    out = kube.helm("template", "labrador", str(CHART), "-n", NS, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_template_renders_every_part(kube: Kube) -> None:
    docs = _template(kube, "--set", "serviceMonitor.enabled=true", "--set", "podMonitor.enabled=true")
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == sorted(
        {
            "CustomResourceDefinition",
            "Deployment",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Secret",
            "Service",
            "ServiceMonitor",
            "PodMonitor",
        }
    )
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["labrador-operator"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" and container["readinessProbe"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    # no CRDs when disabled; namespaced Roles when watching namespaces
    assert not [d for d in _template(kube, "--set", "crds.enabled=false") if d["kind"] == "CustomResourceDefinition"]
    scoped = _template(kube, "--set", "operator.watchNamespaces={team-a,team-b}")
    assert sorted(d["metadata"]["namespace"] for d in scoped if d["kind"] == "Role") == ["team-a", "team-b"]


def test_no_secret_access_in_any_rule(kube: Kube) -> None:
    for args in ((), ("--set", "operator.watchNamespaces={team-a}")):
        for d in _template(kube, *args):
            if d["kind"] in ("ClusterRole", "Role"):
                for rule in d["rules"]:
                    assert "secrets" not in rule.get("resources", []), d["metadata"]["name"]
                    assert "*" not in rule.get("resources", []) and "*" not in rule.get("verbs", [])


def _crd_from_template(text: str) -> dict[str, Any]:
    """The CRD inside a chart template, without the template's own lines."""
    skip = ("{{", "helm.sh/resource-policy")
    return yaml.safe_load(
        "\n".join(
            line
            for line in text.splitlines()
            if not line.lstrip().startswith(skip) and not line.startswith("  annotations:")
        )
    )


def _sa_can(kube: Kube, verb: str, resource: str, namespace: str = "default") -> bool:
    p = kube.kubectl(
        "auth", "can-i", verb, resource, "-n", namespace, f"--as=system:serviceaccount:{NS}:labrador", check=False
    )
    return p.stdout.strip() == "yes"


def test_install_rbac_and_upgrade_with_a_changed_crd(fresh: Kube, tmp_path: Path) -> None:
    # Pod Security "restricted" enforced on the release namespace: the operator pod must still be admitted.
    fresh.kubectl("create", "namespace", NS)
    fresh.kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=restricted")
    fresh.helm("install", "labrador", str(CHART), "-n", NS, "--wait=false", timeout=180)
    for crd in ("taxonomies", "syntheticdatajobs", "finetunejobs"):
        fresh.kubectl("wait", "--for=condition=Established", f"crd/{crd}.labrador.dev", "--timeout=60s")
    pods = wait_for(
        lambda: json.loads(
            fresh.kubectl("get", "pods", "-n", NS, "-l", "app.kubernetes.io/name=labrador", "-o", "json").stdout
        )["items"],
        timeout=60,
        what="operator pod admitted under PSS restricted",
    )
    assert pods[0]["spec"]["serviceAccountName"] == "labrador"

    # least privilege, checked by the API server's own authorizer
    assert _sa_can(fresh, "create", "jobs.batch")
    assert _sa_can(fresh, "patch", "finetunejobs.labrador.dev/status")
    assert _sa_can(fresh, "watch", "pods")
    assert not _sa_can(fresh, "get", "secrets")
    assert not _sa_can(fresh, "list", "secrets", NS)
    assert not _sa_can(fresh, "create", "pods")
    assert not _sa_can(fresh, "delete", "finetunejobs.labrador.dev")
    assert not _sa_can(fresh, "create", "clusterroles.rbac.authorization.k8s.io")
    # no verb the operator never uses: children go with their parent (GC), kinds are patched, never updated
    unused = [
        ("delete", "jobs.batch"),
        ("delete", "configmaps"),
        ("update", "finetunejobs.labrador.dev"),
        ("update", "finetunejobs.labrador.dev/status"),
        ("get", "persistentvolumeclaims"),
    ]
    for verb, resource in unused:
        assert not _sa_can(fresh, verb, resource), (verb, resource)
    # webhook configurations: only Labrador's own is patched; none is read or listed
    webhooks = "validatingwebhookconfigurations.admissionregistration.k8s.io"
    assert _sa_can(fresh, "patch", f"{webhooks}/labrador.dev")
    assert not _sa_can(fresh, "patch", f"{webhooks}/someone-else")
    assert not _sa_can(fresh, "list", webhooks)

    # upgrade with a CRD that gained a field: the served schema changes, because the CRDs are templates
    chart = tmp_path / "labrador"
    shutil.copytree(CHART, chart)
    crd_file = chart / "templates" / "crds" / "finetunejobs.labrador.dev.yaml"
    crd = _crd_from_template(crd_file.read_text())
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec_schema["properties"]["priorityBoost"] = {"type": "integer", "description": "Added by the upgrade test."}
    crd_file.write_text("{{- if .Values.crds.enabled }}\n" + yaml.safe_dump(crd, sort_keys=False) + "{{- end }}\n")
    fresh.helm("upgrade", "labrador", str(chart), "-n", NS, "--wait=false", timeout=180)

    def served() -> bool:
        crd = fresh.get("crd", "finetunejobs.labrador.dev")
        props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        return "priorityBoost" in props

    wait_for(served, timeout=30, what="upgraded CRD schema")
    out = wait_for(
        lambda: (
            "Added by the upgrade test"
            in fresh.kubectl("explain", "finetunejob.spec.priorityBoost", check=False).stdout
        ),
        timeout=60,
        what="explain new field",
    )
    assert out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--set", "operator.replicas=-1"), "/operator/replicas"),
        (("--set", "image.pullPolicy=Sometimes"), "/image/pullPolicy"),
        (("--set", "operatr.replicas=1"), "operatr"),
        (("--set", "metrics.port=70000"), "/metrics/port"),
        (("--set", "serviceMonitor.interval=soon"), "/serviceMonitor/interval"),
    ],
)
def test_bad_values_fail_with_their_path(kube: Kube, args: tuple[str, ...], expected: str) -> None:
    p = kube.helm("install", "bad", str(CHART), "-n", "bad-values", "--dry-run=server", *args, check=False)
    assert p.returncode != 0
    assert "values don't meet the specifications of the schema" in p.stderr
    assert expected in p.stderr, p.stderr


def test_default_values_name_this_commits_images(kube: Kube) -> None:
    """`helm install` with the default values pulls what `make images` builds from this commit: the operator at the
    chart's appVersion and the trainer (gpu variant; cpu: the same tag + "-cpu"), names hack/images.sh also tags
    every build with; the images' version label is that appVersion too (pyproject's version)."""
    import subprocess

    docs = _template(kube)
    dep = next(d for d in docs if d["kind"] == "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    app = chart["appVersion"]
    assert c["image"] == f"ghcr.io/labrador-dev/labrador-operator:{app}", c["image"]
    assert env["LABRADOR_WORKLOAD_IMAGE"] == f"ghcr.io/labrador-dev/labrador-trainer:{app}"
    out = subprocess.run(["bash", str(ROOT / "hack" / "images.sh"), "--names"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    names = dict(line.split(" ", 1) for line in out.strip().splitlines())
    assert names == {
        "labrador-operator": c["image"],
        "labrador-trainer-cpu": f"{env['LABRADOR_WORKLOAD_IMAGE']}-cpu",
        "labrador-trainer-gpu": env["LABRADOR_WORKLOAD_IMAGE"],
    }, names
