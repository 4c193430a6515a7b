"""Builders as data: typed spec in, manifests out (no cluster)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from labrador_operator.api.common import ModelSource
from labrador_operator.api.finetune import FineTuneJobSpec
from labrador_operator.builders import common
from labrador_operator.builders import finetune as b
from labrador_operator.builders.models import model_mount
from labrador_operator.settings import Settings

OWNER = b.Owner("team-a", "granite", "uid-1")
DATA = b.Data(knowledge="data/k.jsonl", skills="data/s.jsonl")
SETTINGS = Settings(workload_image="trainer:test")


def spec(**over: Any) -> FineTuneJobSpec:
    base: dict[str, Any] = {
        "model": {"uri": "pvc://models/granite-8b"},
        "data": {"knowledgePath": "data/k.jsonl", "skillsPath": "data/s.jsonl"},
        "resources": {"nodes": 2, "gpusPerNode": 8},
    }
    base.update(over)
    return FineTuneJobSpec.model_validate(base)


def test_child_names_are_deterministic_and_fit_a_dns_label() -> None:
    assert common.child_name("granite", "knowledge") == "granite-knowledge"
    long_a, long_b = "a" * 60 + "x", "a" * 60 + "y"
    na, nb = common.child_name(long_a, "skills"), common.child_name(long_b, "skills")
    assert na == common.child_name(long_a, "skills")
    assert na != nb and len(na) <= common.MAX_CHILD_NAME and na.endswith("-skills")
    assert len(f"{na}-999") <= 63


def test_phase_job_is_an_indexed_torchrun_job() -> None:
    job = b.build_phase_job(OWNER, spec(), "knowledge", SETTINGS, data=DATA)
    js = job["spec"]
    assert (js["completionMode"], js["completions"], js["parallelism"]) == ("Indexed", 2, 2)
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "labrador.dev/v1alpha1",
            "kind": "FineTuneJob",
            "name": "granite",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert job["metadata"]["labels"]["labrador.dev/phase"] == "knowledge"
    pod = js["template"]["spec"]
    c = pod["containers"][0]
    # labrador-trainer starts torchrun (and turns a preempted run's exit into 143)
    assert c["command"][:6] == [
        "labrador-trainer",
        "train",
        "--nnodes=2",
        "--nproc-per-node=8",
        "--node-rank=$(JOB_COMPLETION_INDEX)",
        "--master-addr=granite-knowledge-0.granite-knowledge",
    ]
    assert c["command"][-4:-2] == ["--config", "/etc/labrador/knowledge.json"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["subdomain"] == "granite-knowledge" and pod["restartPolicy"] == "Never"
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    rules = js["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [2]}}
    assert "suspend" not in js and "activeDeadlineSeconds" not in js


def test_single_node_has_no_service_and_uses_localhost() -> None:
    s = spec(resources={"nodes": 1, "gpusPerNode": 1})
    assert b.build_phase_service(OWNER, s, "knowledge", SETTINGS) is None
    job = b.build_phase_job(OWNER, s, "knowledge", SETTINGS, data=DATA)
    assert "--master-addr=127.0.0.1" in job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "subdomain" not in job["spec"]["template"]["spec"]


def test_headless_service_selects_the_job_pods() -> None:
    svc = b.build_phase_service(OWNER, spec(), "skills", SETTINGS)
    assert svc is not None
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == {"batch.kubernetes.io/job-name": "granite-skills"}


@pytest.mark.parametrize(
    ("run_policy", "expected"),
    [
        ({"suspend": True}, {"suspend": True}),
        ({"queueName": "gpu-queue"}, {"suspend": True}),
        (
            {"activeDeadlineSeconds": 600, "ttlSecondsAfterFinished": 60, "backoffLimit": 1},
            {"activeDeadlineSeconds": 600, "ttlSecondsAfterFinished": 60, "backoffLimit": 1},
        ),
    ],
)
def test_run_policy_reaches_the_job(run_policy: dict[str, Any], expected: dict[str, Any]) -> None:
    one_node = {"nodes": 1, "gpusPerNode": 8}  # a multi-node phase's retries are the operator's (restart as a group)
    job = b.build_phase_job(OWNER, spec(runPolicy=run_policy, resources=one_node), "knowledge", SETTINGS, data=DATA)
    for k, v in expected.items():
        assert job["spec"][k] == v
    if "queueName" in run_policy:
        assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"


def test_pod_metadata_is_added_but_ours_win() -> None:
    s = spec(
        resources={
            "nodes": 1,
            "gpusPerNode": 1,
            "podMetadata": {
                "labels": {"team": "nlp", "labrador.dev/kind": "spoofed"},
                "annotations": {"sidecar.istio.io/inject": "false"},
            },
        }
    )
    meta = b.build_phase_job(OWNER, s, "knowledge", SETTINGS, data=DATA)["spec"]["template"]["metadata"]
    assert meta["labels"]["team"] == "nlp" and meta["labels"]["labrador.dev/kind"] == "finetunejob"
    assert meta["annotations"]["sidecar.istio.io/inject"] == "false"
    assert meta["annotations"]["labrador.dev/owner-name"] == "granite"


def test_each_job_carries_its_own_run_config_as_a_downward_api_file() -> None:
    """No ConfigMap: the pod reads /etc/labrador/<file> from its own annotation, the same text config_files builds."""
    s = spec(evaluation={"checkpointSelection": "best"})
    files = b.config_files(OWNER, s, DATA)
    jobs = {
        "knowledge.json": b.build_phase_job(OWNER, s, "knowledge", SETTINGS, data=DATA),
        "knowledge-select.json": b.build_select_job(OWNER, s, "knowledge", SETTINGS, data=DATA),
        "evaluate.json": b.build_evaluate_job(OWNER, s, SETTINGS, data=DATA),
    }
    for name, job in jobs.items():
        template = job["spec"]["template"]
        own = {k: v for k, v in template["metadata"]["annotations"].items() if k.startswith("config.labrador.dev/")}
        assert own == {f"config.labrador.dev/{name}": files[name]}  # only its own file
        assert "config.labrador.dev/knowledge.json" not in job["metadata"].get("annotations", {})
        pod = template["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "config")
        assert volume == {
            "name": "config",
            "downwardAPI": {
                "items": [
                    {"path": name, "fieldRef": {"fieldPath": f"metadata.annotations['config.labrador.dev/{name}']"}}
                ]
            },
        }
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "config")
        assert mount == {"name": "config", "mountPath": "/etc/labrador", "readOnly": True}
        assert f"/etc/labrador/{name}" in " ".join(pod["containers"][0]["command"])
    # a user's podMetadata annotation cannot replace Labrador's config
    forged = spec(resources={"podMetadata": {"annotations": {"config.labrador.dev/knowledge.json": "{}"}}})
    meta = b.build_phase_job(OWNER, forged, "knowledge", SETTINGS, data=DATA)["spec"]["template"]["metadata"]
    assert (
        meta["annotations"]["config.labrador.dev/knowledge.json"]
        == b.config_files(OWNER, forged, DATA)["knowledge.json"]
    )


def test_phases_chain_through_deterministic_checkpoints() -> None:
    data = b.Data(knowledge="data/k.jsonl", skills="data/s.jsonl")
    cm = b.config_files(OWNER, spec(), data)
    k, s = json.loads(cm["knowledge.json"]), json.loads(cm["skills.json"])
    assert k["model"] == "/models/base-model/granite-8b"
    assert s["model"] == "/workspace/runs/team-a/granite/knowledge/phases/knowledge/final"
    assert k["data"] == "/workspace/data/k.jsonl" and s["data"] == "/workspace/data/s.jsonl"
    assert k["exportDir"] is None and s["exportDir"] == "/workspace/models/team-a/granite"
    assert "evaluate.json" in cm
    best = b.config_files(OWNER, spec(evaluation={"checkpointSelection": "best"}), data)
    assert json.loads(best["skills.json"])["model"] == "/workspace/runs/team-a/granite/knowledge/selected"
    assert json.loads(best["skills-select.json"])["exportDir"] == "/workspace/models/team-a/granite"


def test_evaluation_reads_the_sdg_outputs_and_a_judge_served_in_its_pod() -> None:
    data = b.Data("d/k.jsonl", "d/s.jsonl", multiple_choice="d/mcq.jsonl", held_out="d/heldout.jsonl", general=("r",))
    judge = {"judge": {"model": {"uri": "pvc://models/judge"}}, "checkpointSelection": "best"}
    cm = b.config_files(OWNER, spec(evaluation=judge), data)
    ev, sel = json.loads(cm["evaluate.json"]), json.loads(cm["knowledge-select.json"])
    for cfg in (ev, sel):
        assert cfg["multipleChoice"] == "/workspace/d/mcq.jsonl" and cfg["heldOut"] == "/workspace/d/heldout.jsonl"
        assert cfg["general"] == ["/workspace/r"]
        assert cfg["judge"] == {"kind": "vllm", "model": "/models/judge-model/judge", "vllm": {}, "style": "mt-bench"}
        assert "judge" not in cfg["evaluation"]
    pod = b.build_evaluate_job(OWNER, spec(evaluation=judge), SETTINGS, data=DATA)["spec"]["template"]["spec"]
    # both models are on the claim "models": one volume, mounted at both paths
    volumes = {v["name"] for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert "base-model" in volumes and "judge-model" not in volumes
    assert mounts["/models/base-model"] == mounts["/models/judge-model"] == "base-model"
    explicit = spec(evaluation={"general": ["general/a.jsonl"]})
    ev = json.loads(b.config_files(OWNER, explicit, data)["evaluate.json"])
    assert ev["general"] == ["/workspace/general/a.jsonl"] and ev["judge"] is None


def test_remote_models_are_fetched_with_credentials_from_env_only() -> None:
    m = model_mount(ModelSource(uri="hf://ibm-granite/granite-3.1-8b-base@main", secret_ref={"name": "hf"}), "base")
    assert m.fetch is not None and m.path.startswith("/workspace/.labrador/models/")
    assert m.env_from == [{"secretRef": {"name": "hf"}}]
    assert not any(a == "hf" or "token" in a.lower() for a in m.fetch)
    pvc = model_mount(ModelSource(uri="pvc://models/llama/3"), "base")
    assert pvc.fetch is None and pvc.path == "/models/base/llama/3"
    assert pvc.volumes[0]["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}


def test_an_oci_models_registry_config_is_a_file_for_its_fetch_step_only() -> None:
    """An oci:// Secret is a kubernetes.io/dockerconfigjson one: only its .dockerconfigjson key, mounted read-only
    as a file into the init step that fetches that model (never env, never the main container); its path, not its
    content, is in argv. hf:// and s3:// keep their Secret as envFrom of the fetch step."""
    from labrador_operator.api.sdg import SyntheticDataJobSpec
    from labrador_operator.builders import sdg as sb
    from labrador_operator.builders.models import REGISTRY_CONFIG, REGISTRY_CONFIG_DIR

    m = model_mount(ModelSource(uri="oci://quay.io/acme/granite:8b", secret_ref={"name": "pull"}), "base-model")
    assert m.env_from == [] and m.volumes == [] and m.mounts == []
    assert m.fetch is not None and m.fetch[m.fetch.index("--registry-config") + 1] == REGISTRY_CONFIG
    assert REGISTRY_CONFIG.startswith(REGISTRY_CONFIG_DIR + "/") and "pull" not in m.fetch
    volume = {
        "name": "base-model-registry-config",
        "secret": {
            "secretName": "pull",
            "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
            "defaultMode": 0o400,
        },
    }
    assert m.fetch_volumes == [volume]
    mount = {"name": "base-model-registry-config", "mountPath": REGISTRY_CONFIG_DIR, "readOnly": True}
    assert m.fetch_mounts == [mount]
    anonymous = model_mount(ModelSource(uri="oci://quay.io/acme/granite:8b"), "base-model")
    assert anonymous.fetch is not None and "--registry-config" not in anonymous.fetch and not anonymous.fetch_volumes

    # in every pod that fetches it: the pod has the volume, the fetch step mounts it, nothing else sees it
    judge = {
        "judge": {"model": {"uri": "oci://r.example:5000/judges/j@sha256:" + "a" * 64, "secretRef": {"name": "jp"}}}
    }
    ft = spec(model={"uri": "oci://quay.io/acme/granite:8b", "secretRef": {"name": "pull"}}, evaluation=judge)
    sdg = SyntheticDataJobSpec.model_validate(
        {"taxonomyRef": {"name": "t"}, "teacher": {"model": {"uri": "oci://r.io/t/m:1", "secretRef": {"name": "tp"}}}}
    )
    pods = {
        "phase": b.build_phase_job(OWNER, ft, "knowledge", SETTINGS, data=DATA)["spec"]["template"]["spec"],
        "evaluate": b.build_evaluate_job(OWNER, ft, SETTINGS, data=DATA)["spec"]["template"]["spec"],
        "generate": sb.build_generate_job(sb.Owner("ns", "d", "u"), sdg, SETTINGS)["spec"]["template"]["spec"],
    }
    expect = {
        "phase": {"fetch-model-0": ("base-model-registry-config", "pull")},
        "evaluate": {
            "fetch-model-0": ("base-model-registry-config", "pull"),
            "fetch-model-1": ("judge-model-registry-config", "jp"),
        },
        "generate": {"fetch-model-0": ("teacher-registry-config", "tp")},
    }
    for kind, pod in pods.items():
        secrets = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
        inits = {c["name"]: c for c in pod["initContainers"]}
        assert sorted(inits) == sorted(expect[kind]), kind
        for init_name, (volume_name, secret_name) in expect[kind].items():
            init = inits[init_name]
            assert secrets[volume_name]["secretName"] == secret_name
            assert secrets[volume_name]["items"] == [{"key": ".dockerconfigjson", "path": "config.json"}]
            mine = [vm for vm in init["volumeMounts"] if vm["name"].endswith("-registry-config")]
            assert mine == [{"name": volume_name, "mountPath": REGISTRY_CONFIG_DIR, "readOnly": True}], kind
            assert init["command"][init["command"].index("--registry-config") + 1] == REGISTRY_CONFIG
        assert sorted(secrets) == sorted(v for v, _ in expect[kind].values()), kind
        for c in [*pod["containers"], *pod["initContainers"]]:
            assert "envFrom" not in c, (kind, c["name"])
        assert not [vm for vm in pod["containers"][0]["volumeMounts"] if vm["name"] in secrets], kind

    # hf:// and s3://: the Secret stays envFrom of the fetch step, no volume
    for uri in ("hf://ibm-granite/granite-3.1-8b-base@main", "s3://models/granite"):
        pod = b.build_phase_job(
            OWNER, spec(model={"uri": uri, "secretRef": {"name": "creds"}}), "knowledge", SETTINGS, data=DATA
        )
        pod = pod["spec"]["template"]["spec"]
        (init,) = pod["initContainers"]
        assert init["envFrom"] == [{"secretRef": {"name": "creds"}}] and "--registry-config" not in init["command"]
        assert not [v for v in pod["volumes"] if "secret" in v]


def test_judge_api_key_comes_from_a_secret_reference() -> None:
    s = spec(
        evaluation={
            "judge": {
                "endpoint": {
                    "url": "http://judge/v1",
                    "model": "m",
                    "apiKeySecretRef": {"name": "judge", "key": "token"},
                }
            }
        }
    )
    env = b.build_evaluate_job(OWNER, s, SETTINGS, data=DATA)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "judge", "key": "token"}}} in env


def test_judge_style_reaches_the_evaluate_and_select_configs() -> None:
    data = b.Data("d/k.jsonl", "d/s.jsonl", held_out="d/heldout.jsonl")
    judge = {"endpoint": {"url": "http://judge/v1", "model": "m"}, "style": "dk-bench"}
    s = spec(evaluation={"judge": judge, "checkpointSelection": "best"})
    cm = b.config_files(OWNER, s, data)
    for name in ("evaluate.json", "knowledge-select.json"):
        wire = {"kind": "endpoint", "url": "http://judge/v1", "model": "m", "maxConcurrency": 32, "style": "dk-bench"}
        assert json.loads(cm[name])["judge"] == wire
    default = spec(evaluation={"judge": {"endpoint": {"url": "http://j/v1", "model": "m"}}}).evaluation.judge
    assert default is not None and default.style == "mt-bench"
    with pytest.raises(ValidationError, match="style"):
        spec(evaluation={"judge": judge | {"style": "vibes"}})


def test_user_strings_in_argv_are_escaped_for_the_kubelets_expansion() -> None:
    """`$(VAR)` in a container's command is expanded by the kubelet: a user's ref, path or URL reaches the command
    with every `$` doubled (`$$` is the kubelet's escape), so the workload gets it verbatim, never another variable's
    value. tests/e2e/test_real_node.py checks a real kubelet's expansion of exactly this."""
    from labrador_operator.api.taxonomy import TaxonomySpec
    from labrador_operator.builders import taxonomy as tb

    tspec = TaxonomySpec.model_validate(
        {"source": {"git": {"url": "https://example.com/t$(HOME).git", "ref": "v$(OPENAI_API_KEY)", "path": "a$$b"}}}
    )
    argv = tb.build_sync_job(tb.Owner("ns", "tax", "u"), tspec, 1, 0, SETTINGS)["spec"]["template"]["spec"]
    argv = argv["containers"][0]["command"]
    assert argv[argv.index("--url") + 1] == "https://example.com/t$$(HOME).git"
    assert argv[argv.index("--ref") + 1] == "v$$(OPENAI_API_KEY)"
    assert argv[argv.index("--path") + 1] == "a$$$$b"
    m = model_mount(ModelSource(uri="s3://bucket/$(AWS_SECRET_ACCESS_KEY)"), "base")
    assert m.fetch is not None and m.fetch[m.fetch.index("--uri") + 1] == "s3://bucket/$$(AWS_SECRET_ACCESS_KEY)"
    # our own references still expand
    job = b.build_phase_job(OWNER, spec(), "knowledge", SETTINGS, data=DATA)
    assert "--node-rank=$(JOB_COMPLETION_INDEX)" in job["spec"]["template"]["spec"]["containers"][0]["command"]


def test_workload_pods_get_no_service_account_token() -> None:
    """No workload talks to the API server: a compromised training or generation pod holds no API credential."""
    from labrador_operator.api.sdg import SyntheticDataJobSpec
    from labrador_operator.builders import sdg as sb

    pods = [
        b.build_phase_job(OWNER, spec(), "knowledge", SETTINGS, data=DATA),
        b.build_evaluate_job(OWNER, spec(), SETTINGS, data=DATA),
    ]
    s = SyntheticDataJobSpec.model_validate({"taxonomyRef": {"name": "t"}, "teacher": {"model": {"uri": "pvc://m/t"}}})
    pods += [
        sb.build_generate_job(sb.Owner("ns", "d", "u"), s, SETTINGS),
        sb.build_mix_job(sb.Owner("ns", "d", "u"), s, SETTINGS),
    ]
    for job in pods:
        assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False, job["metadata"]["name"]


def test_sync_job_fails_at_once_only_on_user_errors() -> None:
    """Exit 1 (invalid taxonomy) and 2 (a source the user must fix) fail the sync Job at once; 3 (source unreachable:
    `labrador-trainer taxonomy sync` says so for network failures) is retried by the Job's backoff."""
    from labrador_operator.api.taxonomy import TaxonomySpec
    from labrador_operator.builders import taxonomy as tb

    tspec = TaxonomySpec.model_validate({"source": {"git": {"url": "https://example.com/t.git"}}})
    js = tb.build_sync_job(tb.Owner("ns", "tax", "u"), tspec, 1, 0, SETTINGS)["spec"]
    fail_now = [r for r in js["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
    assert [sorted(r["onExitCodes"]["values"]) for r in fail_now] == [[1, 2]]
    assert js["backoffLimit"] >= 2


def test_sync_job_keeps_the_snapshots_running_jobs_pinned() -> None:
    from labrador_operator.api.taxonomy import TaxonomySpec
    from labrador_operator.builders import taxonomy as tb

    tspec = TaxonomySpec.model_validate({"source": {"git": {"url": "https://example.com/t.git"}}})
    pinned = ("taxonomies/ns/tax/tax-sync-g1-w7", "taxonomies/ns/other/other-sync-g1")  # the second is not ours
    argv = tb.build_sync_job(tb.Owner("ns", "tax", "u"), tspec, 2, 0, SETTINGS, keep=pinned)["spec"]["template"]
    argv = argv["spec"]["containers"][0]["command"]
    assert f"--keep-last={tb.KEEP_SNAPSHOTS}" in argv
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--keep-snapshot"] == [
        "/workspace/taxonomies/ns/tax/tax-sync-g1-w7"
    ]


def test_workload_pods_run_read_only_as_the_images_user_with_writable_scratch() -> None:
    """The trainer image's uid (it has a passwd entry), a read-only root, and every path a workload writes as a
    volume: /tmp, the image's cache directory (HOME, HF_HOME, vLLM/Triton caches), /dev/shm in memory."""
    gpu = b.build_phase_job(OWNER, spec(), "knowledge", SETTINGS, data=DATA)["spec"]["template"]["spec"]
    cpu = b.build_phase_job(OWNER, spec(resources={"nodes": 1, "gpusPerNode": 0}), "knowledge", SETTINGS, data=DATA)
    cpu = cpu["spec"]["template"]["spec"]
    for pod in (gpu, cpu):
        sc = pod["securityContext"]
        assert (sc["runAsUser"], sc["runAsGroup"], sc["fsGroup"]) == (65532, 65532, 65532)
        assert sc["fsGroupChangePolicy"] == "OnRootMismatch" and sc["runAsNonRoot"] is True
        c = pod["containers"][0]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        for path in ("/tmp", common.CACHE_MOUNT, "/dev/shm", "/workspace"):
            assert path in mounts and mounts[path] in volumes, (path, mounts)
    shm = {p is gpu: {v["name"]: v for v in p["volumes"]}["dshm"]["emptyDir"] for p in (gpu, cpu)}
    assert shm[True] == {"medium": "Memory", "sizeLimit": SETTINGS.shm_size_gpu}
    assert shm[False] == {"medium": "Memory", "sizeLimit": SETTINGS.shm_size_cpu}


def test_a_model_on_the_workspace_claim_shares_its_volume() -> None:
    """A kubelet never starts a pod naming one claim in two volumes (it waits on the second mount until it times
    out): a model on the workspace claim is a second, read-only mount of the workspace volume."""
    s = spec(resources={"nodes": 1, "gpusPerNode": 0}, model={"uri": "pvc://labrador-workspace/models/m"},
             workspace={"claimName": "labrador-workspace"})  # fmt: skip
    pod = b.build_phase_job(OWNER, s, "knowledge", SETTINGS, data=DATA)["spec"]["template"]["spec"]
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims == ["labrador-workspace"], pod["volumes"]
    mounts = pod["containers"][0]["volumeMounts"]
    names = {v["name"] for v in pod["volumes"]}
    assert all(m["name"] in names for m in mounts), mounts
    model = [m for m in mounts if m["mountPath"].startswith("/models/")]
    assert model and all(m["readOnly"] and m["name"] == "workspace" for m in model), model


def test_cluster_wide_workload_env_comes_before_the_jobs_own() -> None:
    settings = Settings.from_env({"LABRADOR_WORKLOAD_ENV": json.dumps({"LABRADOR_CPU_BF16": "off", "A": "1"})})
    assert settings.workload_env == {"LABRADOR_CPU_BF16": "off", "A": "1"}
    env = b.build_phase_job(OWNER, spec(), "knowledge", settings, data=DATA)["spec"]["template"]["spec"]["containers"][
        0
    ]["env"]
    assert {"name": "LABRADOR_CPU_BF16", "value": "off"} in env


def test_rdma_is_an_opt_in_for_multi_node_training_pods() -> None:
    """RDMA adds the device and IPC_LOCK (which Pod Security "restricted" forbids) only when asked for, and only
    to the pods NCCL connects across nodes; everything else stays restricted (drop ALL)."""
    plain = b.build_phase_job(OWNER, spec(), "knowledge", SETTINGS, data=DATA)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert "add" not in plain["securityContext"]["capabilities"]
    rdma = {"nodes": 2, "gpusPerNode": 8, "rdma": {"resourceName": "rdma/rdma_shared_device_a"}}
    c = b.build_phase_job(OWNER, spec(resources=rdma), "knowledge", SETTINGS, data=DATA)["spec"]["template"]["spec"]
    c = c["containers"][0]
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]}
    assert c["resources"]["limits"]["rdma/rdma_shared_device_a"] == "1"
    one = {"nodes": 1, "gpusPerNode": 8, "rdma": {"resourceName": "rdma/rdma_shared_device_a"}}
    c = b.build_phase_job(OWNER, spec(resources=one), "knowledge", SETTINGS, data=DATA)["spec"]["template"]["spec"]
    assert "add" not in c["containers"][0]["securityContext"]["capabilities"]
