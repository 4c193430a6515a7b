"""One local cluster with a real node for the e2e tier (hack/cluster.py ``--real-node``: kubelet + containerd,
kube-proxy, CoreDNS, a loopback registry, all in a network namespace of its own).

The demo test runs ``hack/demo.py up`` on it first (images built from this commit, pushed to the registry, the chart
installed with them, the whole pipeline); the other tests reuse that installation. Teardown is ``hack/demo.py down``
and checks that nothing it started is left: processes, the network namespace, the node's cgroups.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import load_script

demo = load_script("labrador_hack_demo", "hack/demo.py")
cluster_mod = demo.cluster_mod
node_mod = demo.node_mod


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][0] != "Z"


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if os.geteuid() != 0:
        pytest.fail("the e2e tier runs a real kubelet and containerd: run as root (as `make test` does in CI)")
    d = tmp_path_factory.mktemp("e2e") / "cluster"
    c = cluster_mod.start(d, nodes=0, cpu_nodes=0, real_node=True)
    started = {p.stem: int(p.read_text()) for p in (d / "pids").glob("*.pid")}
    try:
        yield c
    finally:
        demo.down(demo.Options(dir=d))
    # down: every process, the network namespace and the node's cgroups are gone
    assert {"kubelet", "containerd", "kube-apiserver", "etcd", "registry", "coredns"} <= set(started), started
    assert not [name for name, pid in started.items() if _running(pid)], started
    assert not Path(f"/run/netns/{c.netns}").exists()
    assert not [p for p in node_mod.cgroup_dirs(c.netns) if p.exists()]
