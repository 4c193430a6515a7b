"""The CRDs as the real kube-apiserver serves them: examples, printer columns, explain, validation, status."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLES, load_example
from tests.integration.conftest import Kube, scratch_namespace


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    """Not ``t-*``: these tests are about the API server's own checks, and the in-process operator (started by other
    tests of the session) reconciles what it watches — e.g. it writes a waiting SyntheticDataJob's status back to its
    own decision while a test here checks what a status-subresource patch left."""
    with scratch_namespace(kube, "crd") as name:
        yield name


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """Set a dotted path (list indices as numbers) in the object."""

    def mutate(obj: dict[str, Any]) -> None:
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        node: Any = obj
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return mutate


def _del(path: str) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        keys = path.split(".")
        node: Any = obj
        for k in keys[:-1]:
            node = node[int(k) if k.isdigit() else k]
        del node[keys[-1]]

    return mutate


def _all(*ms: Mutation) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        for m in ms:
            m(obj)

    return mutate


ENDPOINT = {"url": "http://teacher.models:8000/v1", "model": "mixtral"}

# (example, mutation, substrings the API server's error must contain: the field, and what is expected)
INVALID: list[tuple[str, str, Mutation, list[str]]] = [
    # Taxonomy
    ("tax-no-source", "taxonomy", _set("spec.source", {}), ["spec.source", "exactly one of spec.source.git"]),
    (
        "tax-two-sources",
        "taxonomy",
        _set("spec.source.configMap", {"name": "t", "items": [{"key": "a", "path": "a"}]}),
        ["spec.source", "exactly one of"],
    ),
    ("tax-missing-source", "taxonomy", _del("spec.source"), ["spec.source", "Required value"]),
    (
        "tax-bad-git-url",
        "taxonomy",
        _set("spec.source.git.url", "not a url"),
        ["spec.source.git.url", "repository URL"],
    ),
    ("tax-bad-ref", "taxonomy", _set("spec.source.git.ref", "ma in"), ["spec.source.git.ref"]),
    (
        "tax-url-with-token",
        "taxonomy",
        _set("spec.source.git.url", "https://bot:ghp_s3cret@github.com/org/taxonomy.git"),
        ["spec.source.git.url", "must not carry credentials", "secretRef"],
    ),
    (
        "tax-ssh-url-with-password",
        "taxonomy",
        _set("spec.source.git.url", "ssh://git:pw@example.com/org/taxonomy.git"),
        ["spec.source.git.url", "must not carry credentials"],
    ),
    (
        "tax-ref-is-an-option",
        "taxonomy",
        _set("spec.source.git.ref", "--upload-pack=touch /tmp/x"),
        ["spec.source.git.ref", "must not start with '-'"],
    ),
    ("tax-base-is-an-option", "taxonomy", _set("spec.base", "-x"), ["spec.base", "must not start with '-'"]),
    ("tax-path-escapes", "taxonomy", _set("spec.source.git.path", "../etc"), ["spec.source.git.path", "relative path"]),
    (
        "tax-base-without-git",
        "taxonomy",
        _all(
            _set("spec.source", {"volume": {"claimName": "tax"}}),
            _set("spec.base", "main"),
            _del("spec.refreshInterval"),
        ),
        ["spec.base", "needs a git source"],
    ),
    ("tax-bad-refresh", "taxonomy", _set("spec.refreshInterval", "ten minutes"), ["spec.refreshInterval"]),
    (
        "tax-empty-items",
        "taxonomy",
        _set("spec.source", {"configMap": {"name": "t", "items": []}}),
        ["spec.source.configMap.items"],
    ),
    (
        "tax-duplicate-items",
        "taxonomy",
        _set(
            "spec.source",
            {
                "configMap": {
                    "name": "t",
                    "items": [{"key": "a", "path": "x/qna.yaml"}, {"key": "b", "path": "x/qna.yaml"}],
                }
            },
        ),
        ["spec.source.configMap.items[1]", "Duplicate value"],
    ),
    ("tax-unknown-field", "taxonomy", _set("spec.sourc", {}), ['unknown field "spec.sourc"']),
    ("tax-bad-claim", "taxonomy", _set("spec.workspace.claimName", "Bad_Name"), ["spec.workspace.claimName"]),
    # SyntheticDataJob
    (
        "sdg-model-and-endpoint",
        "syntheticdatajob",
        _set("spec.teacher.endpoint", ENDPOINT),
        ["spec.teacher", "exactly one of spec.teacher.model or spec.teacher.endpoint"],
    ),
    (
        "sdg-no-teacher",
        "syntheticdatajob",
        _set("spec.teacher", {}),
        ["spec.teacher", "exactly one of spec.teacher.model or spec.teacher.endpoint"],
    ),
    (
        "sdg-bad-model-uri",
        "syntheticdatajob",
        _set("spec.teacher.model.uri", "http://example.com/model"),
        ["spec.teacher.model.uri", "must be pvc://"],
    ),
    (
        "sdg-negative-gpus",
        "syntheticdatajob",
        _set("spec.resources.gpus", -1),
        ["spec.resources.gpus", "greater than or equal to 0"],
    ),
    ("sdg-zero-parallelism", "syntheticdatajob", _set("spec.parallelism", 0), ["spec.parallelism"]),
    (
        "sdg-bad-pipeline",
        "syntheticdatajob",
        _set("spec.pipeline", "fancy"),
        ["spec.pipeline", 'Unsupported value: "fancy"'],
    ),
    (
        "sdg-memory-fraction",
        "syntheticdatajob",
        _set("spec.teacher.vllm.gpuMemoryUtilization", 1.5),
        ["spec.teacher.vllm.gpuMemoryUtilization"],
    ),
    (
        "sdg-tp-over-gpus",
        "syntheticdatajob",
        _set("spec.teacher.vllm.tensorParallelSize", 8),
        ["spec.teacher.vllm.tensorParallelSize", "must not exceed spec.resources.gpus"],
    ),
    (
        "sdg-vllm-with-endpoint",
        "syntheticdatajob",
        _all(_del("spec.teacher.model"), _set("spec.teacher.endpoint", ENDPOINT)),
        ["spec.teacher.vllm", "applies only to spec.teacher.model"],
    ),
    (
        "sdg-bad-endpoint-url",
        "syntheticdatajob",
        _set("spec.teacher", {"endpoint": {"url": "ftp://teacher/v1", "model": "m"}}),
        ["spec.teacher.endpoint.url"],
    ),
    ("sdg-bad-memory", "syntheticdatajob", _set("spec.resources.memory", "lots"), ["spec.resources.memory"]),
    (
        "sdg-wrong-type",
        "syntheticdatajob",
        _set("spec.samplesPerSeedExample", "many"),
        ["spec.samplesPerSeedExample", "must be of type integer"],
    ),
    ("sdg-missing-taxonomy", "syntheticdatajob", _del("spec.taxonomyRef"), ["spec.taxonomyRef", "Required value"]),
    (
        "sdg-absolute-replay",
        "syntheticdatajob",
        _set("spec.mixing.replay.0.path", "/etc/passwd"),
        ["spec.mixing.replay[0].path", "relative path"],
    ),
    (
        "sdg-negative-backoff",
        "syntheticdatajob",
        _set("spec.runPolicy.backoffLimit", -1),
        ["spec.runPolicy.backoffLimit"],
    ),
    ("sdg-bad-queue", "syntheticdatajob", _set("spec.runPolicy.queueName", "Bad Queue"), ["spec.runPolicy.queueName"]),
    (
        "sdg-bad-toleration",
        "syntheticdatajob",
        _set("spec.resources.tolerations", [{"operator": "Maybe"}]),
        ["spec.resources.tolerations[0].operator", "Unsupported value"],
    ),
    (
        "sdg-bad-secret-key",
        "syntheticdatajob",
        _set("spec.teacher", {"endpoint": {**ENDPOINT, "apiKeySecretRef": {"name": "k"}}}),
        ["spec.teacher.endpoint.apiKeySecretRef.key", "Required value"],
    ),
    # FineTuneJob
    (
        "ft-ref-and-paths",
        "finetunejob",
        _set("spec.data.knowledgePath", "data/k.jsonl"),
        ["spec.data", "set either spec.data.syntheticDataJobRef"],
    ),
    ("ft-no-data", "finetunejob", _set("spec.data", {}), ["spec.data", "set either"]),
    (
        "ft-duplicate-phases",
        "finetunejob",
        _set("spec.phases.1.name", "knowledge"),
        ["spec.phases", "phase names must be unique"],
    ),
    ("ft-no-phases", "finetunejob", _set("spec.phases", []), ["spec.phases", "at least 1 items"]),
    (
        "ft-bad-dataset",
        "finetunejob",
        _set("spec.phases.0.dataset", "math"),
        ["spec.phases[0].dataset", "Unsupported value"],
    ),
    ("ft-zero-lr", "finetunejob", _set("spec.phases.0.learningRate", 0), ["spec.phases[0].learningRate"]),
    ("ft-zero-epochs", "finetunejob", _set("spec.phases.1.epochs", 0), ["spec.phases[1].epochs"]),
    ("ft-bad-phase-name", "finetunejob", _set("spec.phases.0.name", "Knowledge_Phase"), ["spec.phases[0].name"]),
    ("ft-zero-nodes", "finetunejob", _set("spec.resources.nodes", 0), ["spec.resources.nodes"]),
    (
        "ft-too-many-gpus",
        "finetunejob",
        _set("spec.resources.gpusPerNode", 17),
        ["spec.resources.gpusPerNode", "less than or equal to 16"],
    ),
    ("ft-bad-s3", "finetunejob", _set("spec.model.uri", "s3://"), ["spec.model.uri"]),
    ("ft-short-seq", "finetunejob", _set("spec.training.maxSeqLen", 8), ["spec.training.maxSeqLen"]),
    (
        "ft-bad-selection",
        "finetunejob",
        _set("spec.evaluation.checkpointSelection", "worst"),
        ["spec.evaluation.checkpointSelection"],
    ),
    (
        "ft-judge-both",
        "finetunejob",
        _set("spec.evaluation.judge", {"model": {"uri": "pvc://models/judge"}, "endpoint": ENDPOINT}),
        ["spec.evaluation.judge", "exactly one of spec.evaluation.judge.model"],
    ),
    (
        "ft-output-escapes",
        "finetunejob",
        _set("spec.output", {"path": "../../etc"}),
        ["spec.output.path", "relative path"],
    ),
    (
        "ft-name-not-a-service-name",
        "finetunejob",
        _set("metadata.name", "model.v2"),
        ["metadata.name must be a DNS-1035 label"],
    ),
    ("ft-lora-rank", "finetunejob", _set("spec.training.lora", {"rank": 0}), ["spec.training.lora.rank"]),
    (
        "ft-unknown-nested",
        "finetunejob",
        _set("spec.training.learningRate", 1e-5),
        ['unknown field "spec.training.learningRate"'],
    ),
]


@pytest.mark.parametrize(("case", "example", "mutate", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_resources_are_rejected_with_the_field(
    installed: Kube, namespace: str, case: str, example: str, mutate: Mutation, expected: list[str]
) -> None:
    obj = copy.deepcopy(load_example(example))
    obj["metadata"]["name"] = case
    mutate(obj)
    p = installed.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj), check=False
    )
    assert p.returncode != 0, f"{case} was accepted:\n{p.stdout}"
    for s in expected:
        assert s in p.stderr, f"{case}: {s!r} not in error:\n{p.stderr}"


def test_ssh_logins_are_not_credentials(installed: Kube, namespace: str) -> None:
    for i, url in enumerate(["ssh://git@github.com/org/taxonomy.git", "git@github.com:org/taxonomy.git"]):
        obj = copy.deepcopy(load_example("taxonomy"))
        obj["metadata"]["name"] = f"ssh-{i}"
        obj["spec"]["source"]["git"]["url"] = url
        p = installed.kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj))
        assert p.returncode == 0, p.stderr


def test_invalid_table_is_large_enough() -> None:
    assert len(INVALID) >= 25


def test_examples_are_accepted_and_server_side_apply_is_a_noop(installed: Kube, namespace: str) -> None:
    def spec_state() -> dict[str, tuple[int, Any, Any]]:
        out = {}
        for k in ("taxonomy", "syntheticdatajob", "finetunejob"):
            name = load_example(k)["metadata"]["name"]
            got = installed.kubectl("get", k, name, "-n", namespace, "-o", "json", "--show-managed-fields")
            meta = json.loads(got.stdout)["metadata"]
            gitops = [m for m in meta["managedFields"] if m["manager"] == "gitops" and m["operation"] == "Apply"]
            out[k] = (meta["generation"], meta.get("labels"), gitops[0]["fieldsV1"])
        return out

    ssa = ("apply", "--server-side", "--field-manager=gitops", "-n", namespace, "-f", str(EXAMPLES))
    installed.kubectl(*ssa)
    first = spec_state()
    out = installed.kubectl(*ssa).stdout
    assert spec_state() == first, "re-applying the same manifests must change nothing (no fields fought over)"
    assert out.count("serverside-applied") == 3
    # client-side apply of the same files is accepted too
    installed.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES), "--dry-run=server")


def test_api_server_fills_in_defaults(installed: Kube, namespace: str) -> None:
    ft = {
        "apiVersion": "labrador.dev/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "defaults"},
        "spec": {
            "model": {"uri": "pvc://models/granite"},
            "data": {"knowledgePath": "data/k.jsonl", "skillsPath": "data/s.jsonl"},
        },
    }
    installed.apply(ft, namespace)
    spec = installed.get("finetunejob", "defaults", namespace)["spec"]
    assert [(p["name"], p["epochs"], p["learningRate"], p["effectiveBatchSize"]) for p in spec["phases"]] == [
        ("knowledge", 7, 2e-5, 128),
        ("skills", 10, 6e-6, 3840),
    ]
    assert spec["resources"]["nodes"] == 1 and spec["runPolicy"]["backoffLimit"] == 3
    assert spec["workspace"]["claimName"] == "labrador-workspace"
    assert spec["training"]["fsdp"]["shardingStrategy"] == "FULL_SHARD"


def test_printer_columns_filter_conditions_by_type(installed: Kube, namespace: str) -> None:
    installed.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "finetunejob.yaml"))
    name = load_example("finetunejob")["metadata"]["name"]
    status = {
        "status": {
            "phase": "Running",
            "currentPhase": "skills",
            "progress": {"percent": 42, "eta": "12m30s", "etaSeconds": 750, "loss": 1.25},
            # Ready first, something else last: a `[-1:]` column would show the wrong one
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "Training",
                    "message": "",
                    "lastTransitionTime": "2026-11-24T10:00:00Z",
                },
                {
                    "type": "Running",
                    "status": "True",
                    "reason": "Training",
                    "message": "",
                    "lastTransitionTime": "2026-11-24T10:00:00Z",
                },
            ],
        }
    }
    installed.kubectl(
        "patch", "finetunejob", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )
    out = installed.kubectl("get", "finetunejobs", "-n", namespace).stdout.splitlines()
    header, row = out[0].split(), out[1].split()
    assert header == ["NAME", "PHASE", "STAGE", "PROGRESS", "ETA", "READY", "PROMOTED", "ENDPOINT", "AGE"]
    assert row[:6] == [name, "Running", "skills", "42", "12m30s", "False"]
    wide = installed.kubectl("get", "ftj", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert "LOSS" in wide[0].split() and "1.25" in wide[1].split() and "SERVING" in wide[0].split()
    # the `labrador` category lists every kind
    installed.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "taxonomy.yaml"))
    every = installed.kubectl("get", "labrador", "-n", namespace).stdout
    assert "finetunejob.labrador.dev/company-model" in every and "taxonomy.labrador.dev/company-taxonomy" in every


def test_explain_shows_descriptions(installed: Kube) -> None:
    out = installed.kubectl("explain", "finetunejob.spec.phases").stdout
    assert "Phases in order" in out
    for field in ("learningRate", "effectiveBatchSize", "epochs", "dataset"):
        assert field in out
    assert "Peak learning rate of AdamW" in installed.kubectl("explain", "ftj.spec.phases.learningRate").stdout
    assert "exactly one" in installed.kubectl("explain", "taxonomy.spec.source").stdout.lower()


def test_status_subresource_keeps_generation(installed: Kube, namespace: str) -> None:
    installed.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "syntheticdatajob.yaml"))
    name = load_example("syntheticdatajob")["metadata"]["name"]
    gen = installed.get("sdg", name, namespace)["metadata"]["generation"]
    installed.kubectl(
        "patch",
        "sdg",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"phase": "Running", "progress": {"percent": 10}}}',
    )
    obj = installed.get("sdg", name, namespace)
    assert obj["metadata"]["generation"] == gen and obj["status"]["phase"] == "Running"
    # status written through the main resource is ignored
    installed.kubectl("patch", "sdg", name, "-n", namespace, "--type=merge", "-p", '{"status": {"phase": "Failed"}}')
    assert installed.get("sdg", name, namespace)["status"]["phase"] == "Running"
    installed.kubectl("patch", "sdg", name, "-n", namespace, "--type=merge", "-p", '{"spec": {"parallelism": 3}}')
    assert installed.get("sdg", name, namespace)["metadata"]["generation"] == gen + 1


def test_identity_fields_are_immutable(installed: Kube, namespace: str) -> None:
    installed.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "finetunejob.yaml"))
    name = load_example("finetunejob")["metadata"]["name"]
    p = installed.kubectl(
        "patch",
        "ftj",
        name,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"model": {"uri": "pvc://models/other"}}}',
        check=False,
    )
    assert p.returncode != 0 and "spec.model" in p.stderr and "immutable" in p.stderr
    # fields that are not identity stay editable
    installed.kubectl(
        "patch", "ftj", name, "-n", namespace, "--type=merge", "-p", '{"spec": {"runPolicy": {"suspend": true}}}'
    )
