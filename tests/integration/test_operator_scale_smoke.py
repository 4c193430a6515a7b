"""Scale benchmark smoke: bench/operator_scale.py's Labrador run at N=20 on the session's control plane.
Correctness only — every job Succeeded, each has exactly its children, none is orphaned; the timings, and the Go
peer (Kubeflow training-operator, built from the Go module proxy), belong to the benchmark (`make bench-scale`).

The operator runs as its own process restricted to a fresh `scale-*` namespace, as the chart's ServiceAccount; the
in-process operator of other tests watches only `t-*`.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.conftest import load_script
from tests.integration.conftest import Kube, scratch_namespace

N = 20


bench = load_script("labrador_bench_operator_scale", "bench/operator_scale.py")


@pytest.fixture(scope="module")
def env(installed: Kube, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return bench.Env(installed.cluster, tmp_path_factory.mktemp("scale"))


def _check(result: Any, problems: list[str]) -> None:
    assert result.succeeded == N and not result.failed, f"failed: {result.failed}"
    assert problems == []
    assert not math.isnan(result.create_p99), "the bench's watches saw no children being created"
    assert result.operator_writes > 0


def test_labrador_runs_twenty_jobs_without_duplicates(env: Any, installed: Kube, operator_kubeconfig: Path) -> None:
    with scratch_namespace(installed, "scale") as ns:
        result = bench.run(
            env, bench.LABRADOR, N, ns,
            lambda: bench.labrador_operator(env, ns, operator_kubeconfig),
            timeout_s=300, settle_s=1, idle_s=0,
        )  # fmt: skip
        problems = bench.child_problems(env, bench.LABRADOR, ns, {"Job": 1, "Service": 1, "ConfigMap": 0})
        # the pods belong to the Jobs (the Job controller's): exactly one per completion index, none left over
        pods = kubernetes.client.CoreV1Api(env.api).list_namespaced_pod(ns).items
        per_job = Counter((p.metadata.labels or {}).get("batch.kubernetes.io/job-name") for p in pods)
        assert per_job == {f"fin-{i:05d}-only": 2 for i in range(N)}
    _check(result, problems)
