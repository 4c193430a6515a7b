"""`make demo`'s path end to end, with smaller sizes: hack/demo.py's own `up` on the e2e tier's cluster (a real
kubelet + containerd node: every pod in this commit's images, the operator as the chart's Deployment), then checks
the summary it printed; the session's teardown checks that `down` leaves nothing running (tests/e2e/conftest.py).

Time budget: measured warm on a 2-core machine (see docs/demo.md); the test fails when the pipeline takes longer.
"""

from __future__ import annotations

import io
import json
import math
import re
from typing import Any

import pytest

from tests.e2e.conftest import demo

pytestmark = pytest.mark.e2e

#: wall-time budget of the demo path (control plane to summary), seconds: measured 517 s warm (full demo sizes) and
#: 914 s cold (model preparation, vLLM's CPU compile) on a loaded 2-core machine
BUDGET_SECONDS = 1200


@pytest.mark.timeout(BUDGET_SECONDS + 300)  # room for `down` after a failure
def test_demo_runs_the_pipeline_in_containers(real_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """As `make demo CLUSTER=current REGISTRY=...` on a cluster of this machine started separately (the e2e
    fixture's); `make demo` itself differs only in starting that cluster (hack/cluster.py, as the fixture does)."""
    out = io.StringIO()
    monkeypatch.setenv("KUBECONFIG", str(real_cluster.kubeconfig))
    opts = demo.Options(
        dir=real_cluster.dir, cluster="current", registry=real_cluster.registry, samples_per_seed_example=1,
        max_samples=32, max_questions=5, timeout=BUDGET_SECONDS, out=out,
    )  # fmt: skip
    try:
        summary = demo.up(opts)
    finally:
        print(out.getvalue())

    # the summary is the resources' own status: a pinned git revision, samples, two trained phases, an evaluation
    assert len(summary.revision) == 40 and summary.leaves["total"] > 0, summary
    assert summary.generated >= summary.kept > 0, summary
    assert summary.knowledge_samples + summary.skills_samples > 0, summary
    assert list(summary.phase_loss) == ["knowledge", "skills"], summary
    assert all(v is not None and math.isfinite(v) for v in summary.phase_loss.values()), summary
    assert summary.base_score is not None and summary.tuned_score is not None, summary
    model = opts.workspace / summary.model
    assert (model / "config.json").is_file() and list(model.glob("*.safetensors")), sorted(model.iterdir())
    assert summary.report, summary
    assert json.loads(demo.host_path(opts.workspace, summary.report).read_text()), summary.report
    assert summary.wall_seconds < BUDGET_SECONDS, summary
    printed = out.getvalue()
    assert "SyntheticDataJob demo-data: Running" in printed and "FineTuneJob demo-model: Running" in printed
    # progress moves while the teacher works (not only between stages), and an ETA is never shown as 0s
    running = re.findall(r"SyntheticDataJob demo-data: Running (\d+)%", printed)
    assert any(0 < int(p) < 100 for p in running), running
    assert not re.search(r"SyntheticDataJob demo-data: Running \d+%.* ETA 0s", printed)
    # `auto` resolved for this host: the teacher in bf16 only where the CPU has it (or LABRADOR_CPU_BF16=off says
    # not), training in float32 on a CPU
    from labrador_trainer.hardware import inference_dtype

    assert summary.teacher_dtype == inference_dtype("auto", cpu=True), summary
    assert set(summary.phase_dtype.values()) == {"float32"}, summary
    assert printed.startswith("host: ") and "capability" in printed.splitlines()[0]
    assert "Labrador demo: done" in printed and f"wall time       {summary.wall_seconds:.0f}s" in printed
    # the promoted model is served in-cluster (vLLM's OpenAI server in the trainer image) and answered a chat request
    served = summary.served
    assert served is not None and served.url == f"http://demo-model-serve.{demo.NAMESPACE}.svc:8000", summary
    assert served.model == "demo-model" and served.answer, served
    assert f"served          model demo-model at {served.url}/v1" in printed

    # in containers: the operator is the chart's Deployment from this commit's image, every workload pod ran in the
    # trainer image pulled from the cluster's registry, on the real node
    assert f"operator: pod {demo.RELEASE_NS}/" in printed and "uid 65532" in printed, printed
    kube = demo.control_plane(demo.Options(dir=real_cluster.dir))
    pods = kube.get_json("pods", "-n", demo.NAMESPACE)["items"]
    images = {c["image"] for p in pods for c in p["spec"]["containers"]}
    tag = demo.node_mod.build_images()["labrador-trainer-cpu"].rsplit(":", 1)[1]
    assert images == {f"{real_cluster.registry}/labrador-trainer:{tag}"}, images
    assert {p["spec"]["nodeName"] for p in pods} == {demo.node_mod.NODE_NAME}
    # the 2-pod training phases ran as an Indexed Job whose pods found each other through the headless Service
    phase_pods = [p for p in pods if p["metadata"].get("labels", {}).get("labrador.dev/phase") == "knowledge"]
    assert len(phase_pods) == 2 and all(p["status"]["phase"] == "Succeeded" for p in phase_pods), phase_pods
    # the server runs in the trainer image too, restarts on failure (a Deployment's pod), and is stopped here so the
    # next tests have the node's CPU and memory (`make demo` leaves it running for the user)
    serve_pods = [p for p in pods if p["metadata"].get("labels", {}).get("labrador.dev/phase") == "serve"]
    assert len(serve_pods) == 1 and serve_pods[0]["spec"]["restartPolicy"] == "Always", serve_pods
    kube.kubectl("patch", "finetunejob", "demo-model", "-n", demo.NAMESPACE, "--type=json", "-p",
                 '[{"op": "remove", "path": "/spec/serve"}]')  # fmt: skip
