"""FineTuneJob children: per phase an Indexed Job (+ headless Service when it spans nodes), a checkpoint-selection
Job when ``checkpointSelection: best``, and a final evaluation Job; each Job carries its own run config
(``common.attach_config``).

Every path is deterministic, so every config is known when the data is: phase N+1 starts from
``<run>/<phase N>/final`` (or ``/selected`` when the best checkpoint is selected), and the last phase exports the
model to the output directory.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from labrador_operator.api.common import BaseResources
from labrador_operator.api.finetune import FineTuneJobSpec, TrainingPhase
from labrador_operator.builders import common
from labrador_operator.builders.argv import argv_literal
from labrador_operator.builders.models import ModelMount, credentials, model_mount
from labrador_operator.constants import LABEL_ATTEMPT, WORKSPACE_MOUNT
from labrador_operator.settings import Settings

KIND = "FineTuneJob"


class Owner(common.Owner):
    KIND = KIND


@dataclass(frozen=True)
class Data:
    """Resolved training data: workspace-relative paths per dataset."""

    knowledge: str | None
    skills: str | None
    multiple_choice: str | None = None
    held_out: str | None = None
    general: tuple[str, ...] = ()

    def path(self, dataset: str) -> str | None:
        return self.knowledge if dataset == "knowledge" else self.skills


def phase_job_name(owner: Owner, phase: str, attempt: int = 0) -> str:
    """``<name>-<phase>``, and ``-r<n>`` for the n-th restart of a multi-node phase as a group."""
    return common.child_name(owner.name, phase, f"r{attempt}" if attempt else "")


def phase_attempts(owner: Owner, phase: str, existing: Collection[str]) -> list[str]:
    """The phase's Jobs that exist, attempt 0 first (a restart as a group makes the next one)."""
    names = []
    while (name := phase_job_name(owner, phase, len(names))) in existing:
        names.append(name)
    return names


#: pod-failure-policy rule indexes of a multi-node phase Job (the operator reads them back from the Job's failure)
GANG_RULE_USER_ERROR, GANG_RULE_PREEMPTED, GANG_RULE_DISRUPTED = 0, 1, 2


def select_job_name(owner: Owner, phase: str) -> str:
    return common.child_name(owner.name, phase, "select")


def evaluate_job_name(owner: Owner) -> str:
    return common.child_name(owner.name, "evaluate")


def run_dir(owner: Owner) -> str:
    return f"runs/{owner.namespace}/{owner.name}"


def output_dir(owner: Owner, spec: FineTuneJobSpec) -> str:
    return spec.output.path or f"models/{owner.namespace}/{owner.name}"


def phase_dir(owner: Owner, phase: str) -> str:
    return f"{run_dir(owner)}/{phase}"


def final_checkpoint(owner: Owner, phase: str) -> str:
    """Where `labrador-trainer train` leaves a phase's final HF model (``<outputDir>/phases/<phase>/final``)."""
    return f"{phase_dir(owner, phase)}/phases/{phase}/final"


def start_checkpoint(owner: Owner, spec: FineTuneJobSpec, index: int) -> str:
    """Workspace path of the model phase ``index`` starts from ('' means the base model)."""
    if index == 0:
        return ""
    prev = spec.phases[index - 1].name
    if spec.evaluation.checkpoint_selection == "best":
        return f"{phase_dir(owner, prev)}/selected"
    return final_checkpoint(owner, prev)


def _ws(path: str) -> str:
    return f"{WORKSPACE_MOUNT}/{path}"


def phase_config(owner: Owner, spec: FineTuneJobSpec, data: Data, index: int, base_model: str) -> dict[str, Any]:
    phase: TrainingPhase = spec.phases[index]
    last = index == len(spec.phases) - 1
    start = start_checkpoint(owner, spec, index)
    data_path = data.path(phase.dataset)
    export = last and spec.evaluation.checkpoint_selection == "final"
    return {
        "job": {"namespace": owner.namespace, "name": owner.name, "phase": phase.name, "phaseIndex": index},
        "model": _ws(start) if start else base_model,
        "data": _ws(data_path) if data_path else None,
        "outputDir": _ws(phase_dir(owner, phase.name)),
        "exportDir": _ws(output_dir(owner, spec)) if export else None,
        "phase": phase.wire(),
        "training": spec.training.wire(),
        "nodes": spec.resources.nodes,
        "gpusPerNode": spec.resources.gpus_per_node,
    }


def judge_config(spec: FineTuneJobSpec) -> dict[str, Any] | None:
    """The judge as the evaluate command reads it: a model path served by vLLM in the pod, or an endpoint."""
    judge = spec.evaluation.judge
    if judge is None:
        return None
    if judge.model is not None:
        path = model_mount(judge.model, "judge-model").path
        return {"kind": "vllm", "model": path, "vllm": {}, "style": judge.style}
    assert judge.endpoint is not None
    ep = judge.endpoint
    return {
        "kind": "endpoint",
        "url": ep.url,
        "model": ep.model,
        "maxConcurrency": ep.max_concurrency,
        "style": judge.style,
    }


def _evaluation(spec: FineTuneJobSpec) -> dict[str, Any]:
    return {k: v for k, v in spec.evaluation.wire().items() if k not in ("judge", "general")}


def _eval_inputs(spec: FineTuneJobSpec, data: Data) -> dict[str, Any]:
    general = spec.evaluation.general if spec.evaluation.general is not None else list(data.general)
    return {
        "multipleChoice": _ws(data.multiple_choice) if data.multiple_choice else None,
        "heldOut": _ws(data.held_out) if data.held_out else None,
        "general": [_ws(p) for p in general],
        "judge": judge_config(spec),
    }


def evaluate_config(owner: Owner, spec: FineTuneJobSpec, data: Data, base_model: str) -> dict[str, Any]:
    last = spec.phases[-1].name
    tuned = _ws(output_dir(owner, spec))
    return {
        "job": {"namespace": owner.namespace, "name": owner.name},
        "baseModel": base_model,
        "tunedModel": tuned,
        "data": {k: _ws(v) for k, v in (("knowledge", data.knowledge), ("skills", data.skills)) if v},
        "phaseDir": _ws(phase_dir(owner, last)),
        "reportDir": _ws(f"{run_dir(owner)}/evaluation"),
        "evaluation": _evaluation(spec),
        **_eval_inputs(spec, data),
    }


def select_config(owner: Owner, spec: FineTuneJobSpec, data: Data, index: int) -> dict[str, Any]:
    phase = spec.phases[index]
    last = index == len(spec.phases) - 1
    return {
        "job": {"namespace": owner.namespace, "name": owner.name, "phase": phase.name},
        "checkpointsDir": _ws(phase_dir(owner, phase.name)),
        "selectedDir": _ws(f"{phase_dir(owner, phase.name)}/selected"),
        "exportDir": _ws(output_dir(owner, spec)) if last else None,
        "data": _ws(data.path(phase.dataset) or ""),
        "evaluation": _evaluation(spec),
        **_eval_inputs(spec, data),
    }


def config_files(owner: Owner, spec: FineTuneJobSpec, data: Data) -> dict[str, str]:
    """Every run config of the job by file name (``<phase>.json``, ``<phase>-select.json``, ``evaluate.json``);
    each Job mounts its own."""
    base = model_mount(spec.model, "base-model").path
    files: dict[str, str] = {}
    for i, phase in enumerate(spec.phases):
        files[f"{phase.name}.json"] = json.dumps(phase_config(owner, spec, data, i, base), indent=1, sort_keys=True)
        if spec.evaluation.checkpoint_selection == "best":
            files[f"{phase.name}-select.json"] = json.dumps(
                select_config(owner, spec, data, i), indent=1, sort_keys=True
            )
    if spec.evaluation.enabled:
        files["evaluate.json"] = json.dumps(evaluate_config(owner, spec, data, base), indent=1, sort_keys=True)
    return files


def _config_file(owner: Owner, spec: FineTuneJobSpec, data: Data, name: str) -> dict[str, str]:
    return {name: config_files(owner, spec, data)[name]}


def train_argv(owner: Owner, spec: FineTuneJobSpec, phase: str, settings: Settings, attempt: int = 0) -> list[str]:
    """`labrador-trainer train`, which starts torchrun itself when there is more than one process (nodes × GPUs)
    and forwards SIGTERM to it. Not torchrun as the container's command: torchrun exits 1 when its workers stop on
    SIGTERM, so a preempted pod that saved its state would count as a failure; labrador-trainer exits 143 (the pod
    failure policy's "ignore, retry": the replacement pod resumes from that state)."""
    nodes, gpus = spec.resources.nodes, spec.resources.gpus_per_node
    job = phase_job_name(owner, phase, attempt)
    master = f"{job}-0.{job}" if nodes > 1 else "127.0.0.1"
    return [
        "labrador-trainer",
        "train",
        f"--nnodes={nodes}",
        f"--nproc-per-node={max(gpus, 1)}",
        "--node-rank=$(JOB_COMPLETION_INDEX)",
        f"--master-addr={master}",
        f"--master-port={settings.rendezvous_port}",
        "--config",
        f"{common.CONFIG_MOUNT}/{phase}.json",
        f"--metrics-port={settings.metrics_port}",
        f"--termination-log={common.TERMINATION_LOG}",
    ]


def _pod(
    owner: Owner,
    spec: FineTuneJobSpec,
    settings: Settings,
    command: list[str],
    gpus: int,
    subdomain: str | None = None,
    with_ports: bool = True,
    judge: bool = False,
) -> dict[str, Any]:
    ports = [{"name": "metrics", "containerPort": settings.metrics_port, "protocol": "TCP"}] if with_ports else None
    if with_ports and subdomain:
        ports = [*(ports or []), {"name": "rendezvous", "containerPort": settings.rendezvous_port, "protocol": "TCP"}]
    pod = common.pod_spec(
        settings=settings,
        command=command,
        env=[common.env_value("LABRADOR_JOB", owner.name)],
        resources=spec.resources,
        gpus=gpus,
        workspace=spec.workspace,
        ports=ports,
        subdomain=subdomain,
        models=[model_mount(spec.model, "base-model"), *_judge_mounts(spec, judge)],
    )
    rdma = spec.resources.rdma
    if rdma and subdomain:  # training pods of a multi-node phase: the ones NCCL connects across nodes
        main = pod["containers"][0]
        for key in ("requests", "limits"):
            main["resources"][key][rdma.resource_name] = str(rdma.count)
        main["securityContext"]["capabilities"]["add"] = ["IPC_LOCK"]
    return pod


def _judge_mounts(spec: FineTuneJobSpec, wanted: bool) -> list[ModelMount]:
    judge = spec.evaluation.judge
    return [model_mount(judge.model, "judge-model")] if wanted and judge and judge.model else []


def build_phase_service(
    owner: Owner, spec: FineTuneJobSpec, phase: str, settings: Settings, attempt: int = 0
) -> common.Manifest | None:
    """The headless Service giving ``<job>-0.<job>`` to the master of a multi-node phase (None for one node)."""
    if spec.resources.nodes <= 1:
        return None
    job = phase_job_name(owner, phase, attempt)
    meta = common.metadata(job, owner.namespace, owner.ref(), phase)
    return common.headless_service(meta, job, settings.rendezvous_port)


def build_phase_job(
    owner: Owner, spec: FineTuneJobSpec, phase: str, settings: Settings, attempt: int = 0, *, data: Data
) -> common.Manifest:
    """One Indexed Job per phase (per attempt when multi-node). A multi-node phase runs as a gang: torchrun's
    static rendezvous cannot take a replacement rank, so the Job fails as a whole on the first pod failure
    (backoffLimit 0; the Job controller stops the other ranks) and the operator starts the next attempt, which
    resumes from the last saved state. Its failure policy tells the operator why (the rule index in the Job's
    failure message): a user error, a preemption (saved state, exit 143) or a disruption — a crash is the rest."""
    name = phase_job_name(owner, phase, attempt)
    nodes = spec.resources.nodes
    pod = _pod(
        owner,
        spec,
        settings,
        train_argv(owner, spec, phase, settings, attempt),
        spec.resources.gpus_per_node,
        subdomain=name if nodes > 1 else None,
    )
    meta = common.metadata(name, owner.namespace, owner.ref(), phase)
    job = common.job(
        meta=meta,
        pod=pod,
        settings=settings,
        run_policy=spec.run_policy,
        completions=nodes,
        indexed=True,
        pod_metadata=spec.resources.pod_metadata,
    )
    job["spec"]["template"]["metadata"]["labels"][LABEL_ATTEMPT] = str(attempt)
    if nodes > 1:
        main = {"containerName": "main", "operator": "In"}
        job["spec"]["backoffLimit"] = 0
        job["spec"]["podFailurePolicy"] = {
            "rules": [  # in the order of GANG_RULE_*
                {"action": "FailJob", "onExitCodes": {**main, "values": list(settings.user_error_exit_codes)}},
                {"action": "FailJob", "onExitCodes": {**main, "values": [settings.preempted_exit_code]}},
                {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]
        }
    return common.attach_config(job, _config_file(owner, spec, data, f"{phase}.json"))


def build_select_job(
    owner: Owner, spec: FineTuneJobSpec, phase: str, settings: Settings, *, data: Data
) -> common.Manifest:
    name = select_job_name(owner, phase)
    argv = [
        "labrador-trainer",
        "evaluate",
        "--select-checkpoint",
        "--config",
        f"{common.CONFIG_MOUNT}/{phase}-select.json",
        f"--termination-log={common.TERMINATION_LOG}",
    ]
    pod = _pod(owner, spec, settings, argv, min(spec.resources.gpus_per_node, 1), judge=True)
    meta = common.metadata(name, owner.namespace, owner.ref(), f"{phase}-select")
    job = common.job(
        meta=meta, pod=pod, settings=settings, run_policy=spec.run_policy, pod_metadata=spec.resources.pod_metadata
    )
    return common.attach_config(job, _config_file(owner, spec, data, f"{phase}-select.json"))


def export_job_name(owner: Owner) -> str:
    return common.child_name(owner.name, "export")


#: the export step copies files: it needs no GPU and far less than a training pod
EXPORT_RESOURCES = BaseResources(cpu="1", memory="2Gi")


def build_export_job(owner: Owner, spec: FineTuneJobSpec, settings: Settings) -> common.Manifest:
    """``labrador-trainer model export`` of the final model to ``spec.output.uri`` (only for a promoted model: the
    reconcile decides). Credentials as the fetch step gets them (``models.credentials``), never in argv."""
    out = spec.output
    assert out.uri is not None
    argv = [
        "labrador-trainer", "model", "export",
        "--src", f"{WORKSPACE_MOUNT}/{output_dir(owner, spec)}",
        "--uri", argv_literal(out.uri),
        f"--termination-log={common.TERMINATION_LOG}",
    ]  # fmt: skip
    if out.endpoint:
        argv += ["--endpoint", argv_literal(out.endpoint)]
    creds = credentials(out.uri, out.secret_ref.name if out.secret_ref else None, "export")
    resources = EXPORT_RESOURCES.model_copy(
        update={k: getattr(spec.resources, k) for k in ("node_selector", "tolerations", "priority_class_name")}
    )
    pod = common.pod_spec(
        settings=settings,
        command=[*argv, *creds.argv],
        env=[common.env_value("LABRADOR_JOB", owner.name)],
        resources=resources,
        gpus=0,
        workspace=spec.workspace,
        extra_volumes=list(zip(creds.volumes, creds.mounts, strict=True)),
    )
    if creds.env_from:
        pod["containers"][0]["envFrom"] = creds.env_from
    meta = common.metadata(export_job_name(owner), owner.namespace, owner.ref(), "export")
    return common.job(
        meta=meta, pod=pod, settings=settings, run_policy=spec.run_policy, pod_metadata=spec.resources.pod_metadata
    )


def build_evaluate_job(owner: Owner, spec: FineTuneJobSpec, settings: Settings, *, data: Data) -> common.Manifest:
    name = evaluate_job_name(owner)
    argv = [
        "labrador-trainer",
        "evaluate",
        "--config",
        f"{common.CONFIG_MOUNT}/evaluate.json",
        f"--metrics-port={settings.metrics_port}",
        f"--termination-log={common.TERMINATION_LOG}",
    ]
    pod = _pod(owner, spec, settings, argv, min(spec.resources.gpus_per_node, 1), judge=True)
    if spec.evaluation.judge and spec.evaluation.judge.endpoint and spec.evaluation.judge.endpoint.api_key_secret_ref:
        ref = spec.evaluation.judge.endpoint.api_key_secret_ref
        main = pod["containers"][0]
        main["env"] = common.merge_by_name(main["env"], [common.env_secret("OPENAI_API_KEY", ref.name, ref.key)])
    meta = common.metadata(name, owner.namespace, owner.ref(), "evaluate")
    job = common.job(
        meta=meta, pod=pod, settings=settings, run_policy=spec.run_policy, pod_metadata=spec.resources.pod_metadata
    )
    return common.attach_config(job, _config_file(owner, spec, data, "evaluate.json"))
