"""Taxonomy → SyntheticDataJob → FineTuneJob through the operator on the real control plane.

kwok plays the kubelet: pods run ~1 s and finish; a test gives a pod its termination message (the workload's JSON
result) with the `labrador.dev/kwok-termination-message` annotation through `podMetadata`, so the operator's path from
pod result to status is the real one.
"""

from __future__ import annotations

import json
from typing import Any

from tests.integration.conftest import Kube, bind_claim, wait_for

SYNC_RESULT = {
    "valid": True,
    "revision": "3f2a9c1d",
    "counts": {"knowledge": 1, "freeform_skill": 2, "grounded_skill": 1},
    "leaves": [
        {"path": "knowledge/science/astronomy", "type": "knowledge", "seed_examples": 5},
        {"path": "compositional_skills/writing/poems", "type": "freeform_skill", "seed_examples": 5},
        {"path": "compositional_skills/writing/haiku", "type": "freeform_skill", "seed_examples": 5},
        {"path": "compositional_skills/extraction/tables", "type": "grounded_skill", "seed_examples": 5},
    ],
    "errors": [],
}


def taxonomy(name: str, result: dict[str, Any], exit_code: int | None = None) -> dict[str, Any]:
    annotations = {"labrador.dev/kwok-termination-message": json.dumps(result)}
    if exit_code is not None:
        annotations["labrador.dev/kwok-exit-code"] = str(exit_code)
    return {
        "apiVersion": "labrador.dev/v1alpha1",
        "kind": "Taxonomy",
        "metadata": {"name": name},
        "spec": {
            "source": {
                "configMap": {
                    "name": f"{name}-files",
                    "items": [{"key": "poems", "path": "compositional_skills/writing/poems/qna.yaml"}],
                }
            },
            "podMetadata": {"annotations": annotations},
        },
    }


def sdg_job(name: str, taxonomy: str, parallelism: int, resources: dict[str, Any]) -> dict[str, Any]:
    """A SyntheticDataJob with an in-pod teacher on pvc://models (kwok runs its pods)."""
    return {
        "apiVersion": "labrador.dev/v1alpha1",
        "kind": "SyntheticDataJob",
        "metadata": {"name": name},
        "spec": {
            "taxonomyRef": {"name": taxonomy},
            "teacher": {"model": {"uri": "pvc://models/teacher"}},
            "parallelism": parallelism,
            "resources": resources,
        },
    }


def status_of(kube: Kube, kind: str, ns: str, name: str) -> dict[str, Any]:
    return kube.get(kind, name, ns).get("status") or {}


def conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions", [])}


def wait_phase(kube: Kube, kind: str, ns: str, name: str, phase: str, timeout: float = 60) -> dict[str, Any]:
    return wait_for(
        lambda: (s := status_of(kube, kind, ns, name)).get("phase") == phase and s,
        timeout=timeout,
        what=f"{kind}/{name} {phase}",
    )


def test_taxonomy_ready_with_leaves_from_the_sync_result(
    installed: Kube, operator: Any, namespace: str, workspace: str
) -> None:
    installed.apply(taxonomy("tax", SYNC_RESULT), namespace)
    s = wait_phase(installed, "taxonomy", namespace, "tax", "Ready")
    assert s["revision"] == "3f2a9c1d"
    assert s["counts"] == {"knowledge": 1, "freeformSkill": 2, "groundedSkill": 1, "total": 4}
    assert s["leaves"][0] == {"path": "knowledge/science/astronomy", "type": "knowledge", "seedExamples": 5}
    assert conds(s)["Ready"] == ("True", "Synced") and conds(s)["Valid"] == ("True", "Synced")
    assert s["snapshot"]["path"].startswith(f"taxonomies/{namespace}/tax/tax-sync-g1")
    job = installed.get("job", "tax-sync-g1", namespace)
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"][-1]["configMap"]["items"] == [
        {"key": "poems", "path": "compositional_skills/writing/poems/qna.yaml"}
    ]
    assert "--source-dir" in pod["containers"][0]["command"]
    out = installed.kubectl("get", "taxonomy", "tax", "-n", namespace).stdout.split()
    assert "3f2a9c1d" in out and "Ready" in out


def test_invalid_taxonomy_reports_file_and_line(installed: Kube, operator: Any, namespace: str, workspace: str) -> None:
    bad = {
        "valid": False,
        "revision": "abc",
        "error_count": 2,
        "errors": [
            {
                "path": "compositional_skills/writing/poems/qna.yaml",
                "line": 7,
                "message": "seed_examples: too few (4 < 5)",
            },
            {"path": "knowledge/x/qna.yaml", "line": 1, "message": "document: no .md files match"},
        ],
    }
    installed.apply(taxonomy("bad", bad, exit_code=1), namespace)
    s = wait_phase(installed, "taxonomy", namespace, "bad", "Invalid")
    assert s["errorCount"] == 2
    assert s["errors"][0] == {
        "path": "compositional_skills/writing/poems/qna.yaml",
        "line": 7,
        "message": "seed_examples: too few (4 < 5)",
    }
    valid = next(c for c in s["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "False" and valid["reason"] == "ValidationFailed"
    assert "compositional_skills/writing/poems/qna.yaml:7" in valid["message"]
    # exit code 1 is not retried
    assert installed.get("job", "bad-sync-g1", namespace)["status"].get("failed", 0) == 1


def test_whole_pipeline_waits_pins_and_chains(installed: Kube, operator: Any, namespace: str, workspace: str) -> None:
    # every pod of the SDG reports this (generate shards and mix alike): counts for mix, the teacher's dtype
    mix_result = {
        "counts": {"generated": 120, "kept": 100, "dropped": 20, "knowledge": 60, "skills": 40},
        "dtype": "float32",
    }
    annotations = {"labrador.dev/kwok-termination-message": json.dumps(mix_result)}
    sdg = sdg_job(
        "data", "tax", 3, {"gpus": 1, "cpu": "1", "memory": "1Gi", "podMetadata": {"annotations": annotations}}
    )
    ft = {
        "apiVersion": "labrador.dev/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "model"},
        "spec": {
            "model": {"uri": "pvc://models/student"},
            "data": {"syntheticDataJobRef": {"name": "data"}},
            "resources": {"nodes": 1, "gpusPerNode": 1, "cpu": "1", "memory": "1Gi"},
            "evaluation": {"enabled": False},
        },
    }
    bind_claim(installed, namespace, "models", access="ReadOnlyMany")  # the pvc://models/... claim
    installed.apply([sdg, ft], namespace)
    s = wait_phase(installed, "sdg", namespace, "data", "Waiting")
    assert conds(s)["TaxonomyReady"] == ("False", "TaxonomyNotFound")
    wait_phase(installed, "ftj", namespace, "model", "Waiting")

    installed.apply(taxonomy("tax", SYNC_RESULT), namespace)
    s = wait_phase(installed, "sdg", namespace, "data", "Succeeded", timeout=90)
    assert s["taxonomyRevision"] == "3f2a9c1d"
    assert s["taxonomySnapshot"] == f"taxonomies/{namespace}/tax/tax-sync-g1"  # later syncs keep it while it runs
    assert s["outputs"]["knowledge"] == f"sdg/{namespace}/data/knowledge_train_msgs.jsonl"
    assert s["outputs"]["counts"] == mix_result["counts"]
    assert s["shards"] == {"total": 3, "active": 0, "succeeded": 3, "failed": 0}
    assert s["teacherDtype"] == "float32"  # what the shards' engines resolved `auto` to
    gen = installed.get("job", "data-generate", namespace)
    assert gen["spec"]["completions"] == 3 and gen["spec"]["completionMode"] == "Indexed"
    argv = gen["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--shard=$(JOB_COMPLETION_INDEX)/3" in argv
    cm = json.loads(installed.get("configmap", "data-config", namespace)["data"]["generate.json"])
    assert cm["taxonomyRevision"] == "3f2a9c1d" and cm["taxonomy"].endswith("/tax-sync-g1")

    f = wait_phase(installed, "ftj", namespace, "model", "Succeeded", timeout=90)
    assert conds(f)["DataReady"][0] == "True"
    # the phase Job carries its own run config (no ConfigMap for a FineTuneJob)
    template = installed.get("job", "model-knowledge", namespace)["spec"]["template"]
    run = json.loads(template["metadata"]["annotations"]["config.labrador.dev/knowledge.json"])
    assert run["data"] == f"/workspace/sdg/{namespace}/data/knowledge_train_msgs.jsonl"


def test_generation_progress_moves_within_a_stage_and_has_no_eta_before_a_rate(
    installed: Kube, operator: Any, namespace: str, workspace: str
) -> None:
    """The shard's work fraction (moves with every finished request, judges included) sets percent; an ETA the
    workload does not know yet (NaN) is absent from status, not 0s."""
    import threading
    from http.server import ThreadingHTTPServer

    from prometheus_client import CollectorRegistry, Gauge
    from prometheus_client.exposition import MetricsHandler

    installed.apply(taxonomy("ptax", SYNC_RESULT), namespace)
    wait_phase(installed, "taxonomy", namespace, "ptax", "Ready")
    sdg = sdg_job("pdata", "ptax", 2, {"gpus": 1, "podMetadata": {"annotations": {"labrador.dev/kwok-hold": "true"}}})
    bind_claim(installed, namespace, "models", access="ReadOnlyMany")
    installed.apply(sdg, namespace)

    def running_shards() -> list[dict[str, Any]] | None:
        out = installed.kubectl("get", "pods", "-n", namespace, "-l", "batch.kubernetes.io/job-name=pdata-generate",
                                "-o", "json").stdout  # fmt: skip
        pods = [x for x in json.loads(out)["items"] if x["status"].get("phase") == "Running"]
        pods = [x for x in pods if x["status"].get("podIP")]
        return pods if len(pods) == 2 else None

    pods = wait_for(running_shards, timeout=60, what="both generate shards running")
    registry = CollectorRegistry()
    g = {
        k: Gauge(f"labrador_sdg_{k}", k, registry=registry)
        for k in ("samples_generated", "samples_target", "output_tokens_per_second", "eta_seconds", "work_fraction")
    }
    g["samples_generated"].set(0)  # the judge stages of a run generate no samples, yet the fraction moves
    g["samples_target"].set(10)
    g["output_tokens_per_second"].set(55.5)
    g["eta_seconds"].set(float("nan"))
    g["work_fraction"].set(0.4)
    servers = []
    for pod in pods:  # both shards report the same figures: (0.4 + 0.4) / 2 shards = 40 %
        server = ThreadingHTTPServer((pod["status"]["podIP"], 9400), MetricsHandler.factory(registry))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    try:

        def progress(percent: int) -> dict[str, Any] | None:
            p = status_of(installed, "sdg", namespace, "pdata").get("progress")
            return p if p and p.get("percent") == percent else None

        p = wait_for(lambda: progress(40), timeout=30, what="status.progress 40 %")
        assert p["samples"] == 0 and p["targetSamples"] == 20 and p["outputTokensPerSecond"] == 111.0
        assert "etaSeconds" not in p and "eta" not in p
        g["work_fraction"].set(0.7)
        g["eta_seconds"].set(90)
        p = wait_for(lambda: progress(70), timeout=30, what="status.progress 70 %")
        assert p["etaSeconds"] == 90 and p["eta"] == "1m30s"
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
