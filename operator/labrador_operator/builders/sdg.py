"""SyntheticDataJob children: a ConfigMap of run configs, an Indexed generate Job (one shard per pod), a mix Job.

Outputs land at deterministic workspace paths under ``sdg/<namespace>/<name>/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from labrador_operator.api.sdg import SyntheticDataJobSpec
from labrador_operator.builders import common
from labrador_operator.builders.models import ModelMount, model_mount
from labrador_operator.constants import WORKSPACE_MOUNT
from labrador_operator.settings import Settings

KIND = "SyntheticDataJob"


class Owner(common.Owner):
    KIND = KIND


@dataclass(frozen=True)
class Snapshot:
    """The pinned Taxonomy: its revision and where its validated snapshot is on the workspace."""

    revision: str
    path: str


def out_dir(owner: Owner) -> str:
    return f"sdg/{owner.namespace}/{owner.name}"


def outputs(owner: Owner) -> dict[str, str]:
    base = out_dir(owner)
    return {
        "knowledge": f"{base}/knowledge_train_msgs.jsonl",
        "skills": f"{base}/skills_train_msgs.jsonl",
        "multipleChoice": f"{base}/mcq.jsonl",
        "heldOut": f"{base}/heldout.jsonl",
    }


def config_map_name(owner: Owner) -> str:
    return common.child_name(owner.name, "config")


def generate_job_name(owner: Owner) -> str:
    return common.child_name(owner.name, "generate")


def mix_job_name(owner: Owner) -> str:
    return common.child_name(owner.name, "mix")


def _teacher(spec: SyntheticDataJobSpec) -> tuple[dict[str, Any], ModelMount | None]:
    t = spec.teacher
    if t.model is not None:
        m = model_mount(t.model, "teacher")
        vllm = (t.vllm.wire() if t.vllm else {}) or {}
        return {"kind": "vllm", "model": m.path, "vllm": vllm}, m
    assert t.endpoint is not None
    return {
        "kind": "endpoint",
        "url": t.endpoint.url,
        "model": t.endpoint.model,
        "maxConcurrency": t.endpoint.max_concurrency,
    }, None


def build_config_map(owner: Owner, spec: SyntheticDataJobSpec, snap: Snapshot, settings: Settings) -> common.Manifest:
    teacher, _ = _teacher(spec)
    base = f"{WORKSPACE_MOUNT}/{out_dir(owner)}"
    generate = {
        "job": {"namespace": owner.namespace, "name": owner.name},
        "taxonomy": f"{WORKSPACE_MOUNT}/{snap.path}",
        "taxonomyRevision": snap.revision,
        "teacher": teacher,
        "pipeline": spec.pipeline,
        "promptsDir": "/etc/labrador/prompts" if spec.prompts_config_map_ref else None,
        "samplesPerSeedExample": spec.samples_per_seed_example,
        "maxSamples": spec.max_samples,
        "maxNewTokens": spec.max_new_tokens,
        "shards": spec.parallelism,
        "seed": spec.seed,
        "outputDir": f"{base}/shards",
    }
    mix = {
        "job": {"namespace": owner.namespace, "name": owner.name},
        "inputDir": f"{base}/shards",
        "outputs": {k: f"{WORKSPACE_MOUNT}/{v}" for k, v in outputs(owner).items()},
        "mixing": {
            **spec.mixing.wire(),
            "replay": [{**r.wire(), "path": f"{WORKSPACE_MOUNT}/{r.path}"} for r in spec.mixing.replay or []],
        },
        "seed": spec.seed,
        "taxonomy": f"{WORKSPACE_MOUNT}/{snap.path}",
    }
    meta = common.metadata(config_map_name(owner), owner.namespace, owner.ref(), "config")
    return common.config_map(
        meta,
        {
            "generate.json": json.dumps(generate, indent=1, sort_keys=True),
            "mix.json": json.dumps(mix, indent=1, sort_keys=True),
        },
    )


def build_generate_job(owner: Owner, spec: SyntheticDataJobSpec, settings: Settings) -> common.Manifest:
    n = spec.parallelism
    _, mount = _teacher(spec)
    argv = [
        "labrador-trainer",
        "generate",
        "--config",
        f"{common.CONFIG_MOUNT}/generate.json",
        f"--shard=$(JOB_COMPLETION_INDEX)/{n}",
        f"--metrics-port={settings.metrics_port}",
        f"--termination-log={common.TERMINATION_LOG}",
    ]
    env: list[dict[str, Any]] = []
    ep = spec.teacher.endpoint
    if ep and ep.api_key_secret_ref:
        env.append(common.env_secret("OPENAI_API_KEY", ep.api_key_secret_ref.name, ep.api_key_secret_ref.key))
    extra = []
    if spec.prompts_config_map_ref:
        extra.append(
            (
                {"name": "prompts", "configMap": {"name": spec.prompts_config_map_ref.name}},
                {"name": "prompts", "mountPath": "/etc/labrador/prompts", "readOnly": True},
            )
        )
    gpus = spec.resources.gpus if spec.teacher.model is not None else 0
    pod = common.pod_spec(
        settings=settings,
        command=argv,
        env=env,
        resources=spec.resources,
        gpus=gpus,
        workspace=spec.workspace,
        config_map=config_map_name(owner),
        ports=[{"name": "metrics", "containerPort": settings.metrics_port, "protocol": "TCP"}],
        models=[mount] if mount else None,
        extra_volumes=extra,
    )
    meta = common.metadata(generate_job_name(owner), owner.namespace, owner.ref(), "generate")
    # each shard is one pod; backoffLimitPerIndex would be ideal, the Job-wide limit scales with shards
    return common.job(
        meta=meta,
        pod=pod,
        settings=settings,
        run_policy=spec.run_policy,
        completions=n,
        indexed=True,
        backoff_limit=spec.run_policy.backoff_limit * n,
        pod_metadata=spec.resources.pod_metadata,
    )


def build_mix_job(owner: Owner, spec: SyntheticDataJobSpec, settings: Settings) -> common.Manifest:
    argv = [
        "labrador-trainer",
        "mix",
        "--config",
        f"{common.CONFIG_MOUNT}/mix.json",
        f"--termination-log={common.TERMINATION_LOG}",
    ]
    pod = common.pod_spec(
        settings=settings,
        command=argv,
        env=[],
        resources=spec.resources,
        gpus=0,
        workspace=spec.workspace,
        config_map=config_map_name(owner),
    )
    meta = common.metadata(mix_job_name(owner), owner.namespace, owner.ref(), "mix")
    return common.job(
        meta=meta, pod=pod, settings=settings, run_policy=spec.run_policy, pod_metadata=spec.resources.pod_metadata
    )
