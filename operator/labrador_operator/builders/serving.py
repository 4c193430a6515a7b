"""spec.serve → the serving Deployment and Service of a promoted FineTuneJob's model (and, with compareBase, of its base
model): vLLM's OpenAI-compatible server, started by ``labrador-trainer serve`` in the workload image. Pure."""

from __future__ import annotations

from typing import Any

from labrador_operator.api.finetune import FineTuneJobSpec, Serve
from labrador_operator.builders import common
from labrador_operator.builders.finetune import Owner, output_dir
from labrador_operator.builders.models import model_mount
from labrador_operator.constants import WORKSPACE_MOUNT
from labrador_operator.settings import Settings

PORT = 8000
#: the roles (labrador.dev/phase) of the two servers, also their pods' and Services' selector
TUNED, BASE = "serve", "serve-base"
#: vLLM on CPU takes minutes to load and warm up: the startup probe allows 20 min before the kubelet restarts it
STARTUP_PERIOD, STARTUP_FAILURES = 10, 120


def serve_name(owner: Owner, role: str = TUNED) -> str:
    """``<name>-serve`` / ``<name>-serve-base``: the Deployment's and the Service's name."""
    return common.child_name(owner.name, *role.split("-"))


def model_name(owner: Owner, serve: Serve, role: str = TUNED) -> str:
    name = serve.served_model_name or owner.name
    return f"{name}-base" if role == BASE else name


def url(owner: Owner, role: str = TUNED) -> str:
    """The Service's in-cluster URL (the OpenAI API is under /v1)."""
    return f"http://{serve_name(owner, role)}.{owner.namespace}.svc:{PORT}"


def roles(serve: Serve) -> tuple[str, ...]:
    return (TUNED, BASE) if serve.compare_base else (TUNED,)


def serve_argv(owner: Owner, spec: FineTuneJobSpec, serve: Serve, role: str) -> list[str]:
    """``labrador-trainer serve``'s argv: the tuned model on the workspace, or the base model where the training pods
    see it. Every value is the typed spec's (names match patterns, numbers are numbers): no free text."""
    if role == BASE:
        path = model_mount(spec.model, "base-model").path
    else:
        path = f"{WORKSPACE_MOUNT}/{output_dir(owner, spec)}"
    argv = ["labrador-trainer", "serve", "--model", path, "--served-model-name", model_name(owner, serve, role)]
    argv += ["--host", "0.0.0.0", "--port", str(PORT)]
    v = serve.vllm
    if v is not None:
        argv += ["--max-model-len", str(v.max_model_len), "--dtype", v.dtype]
        argv += ["--gpu-memory-utilization", str(v.gpu_memory_utilization)]
        argv += ["--tensor-parallel-size", str(v.tensor_parallel_size)]
        argv += ["--enforce-eager"] if v.enforce_eager else []
    return argv


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
    }


def build_deployment(owner: Owner, spec: FineTuneJobSpec, settings: Settings, role: str = TUNED) -> common.Manifest:
    """One server: restarts on failure (a Deployment, not a Job), ready once vLLM's /health answers."""
    serve = spec.serve
    assert serve is not None
    res = serve.resources
    pod = common.pod_spec(
        settings=settings,
        command=serve_argv(owner, spec, serve, role),
        env=[common.env_value("LABRADOR_JOB", owner.name)],
        resources=res,
        gpus=res.gpus,
        workspace=spec.workspace,
        ports=[{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        models=[model_mount(spec.model, "base-model")] if role == BASE else None,
    )
    pod["restartPolicy"] = "Always"
    main = pod["containers"][0]
    main["startupProbe"] = _probe("/health", STARTUP_PERIOD, STARTUP_FAILURES)
    main["readinessProbe"] = _probe("/health", 5, 3)
    main["livenessProbe"] = _probe("/health", 20, 6)
    meta = common.metadata(serve_name(owner, role), owner.namespace, owner.ref(), role)
    selector = common.labels(owner.KIND, owner.name, role)
    extra = res.pod_metadata
    template_meta = {
        "labels": {**((extra.labels if extra else None) or {}), **meta["labels"]},
        "annotations": {
            **((extra.annotations if extra else None) or {}),
            **settings.pod_annotations,
            **meta["annotations"],
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": serve.replicas,
            "selector": {"matchLabels": selector},
            # one model directory on a ReadWriteOnce volume at most: replace, never run old and new side by side
            "strategy": {"type": "Recreate"},
            "progressDeadlineSeconds": STARTUP_PERIOD * STARTUP_FAILURES + 300,
            "template": {"metadata": template_meta, "spec": pod},
        },
    }


def build_service(owner: Owner, role: str = TUNED) -> common.Manifest:
    meta = common.metadata(serve_name(owner, role), owner.namespace, owner.ref(), role)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "selector": common.labels(owner.KIND, owner.name, role),
            "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


# --- runtime kserve: a KServe InferenceService instead of the Deployment and Service ------------------------------

KSERVE_API = "serving.kserve.io/v1beta1"
KSERVE_DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
#: KServe's Hugging Face server answers the OpenAI API under this path of the InferenceService's URL
KSERVE_OPENAI_PATH = "/openai/v1"


def storage_uri(owner: Owner, spec: FineTuneJobSpec) -> str:
    """``pvc://<claim>/<sub path>/<output model>``: the directory the Deployment path serves from the workspace."""
    ws = spec.workspace
    path = "/".join(p.strip("/") for p in (ws.sub_path or "", output_dir(owner, spec)) if p.strip("/"))
    return f"pvc://{ws.claim_name}/{path}"


def kserve_args(owner: Owner, serve: Serve) -> list[str]:
    """KServe's Hugging Face server's arguments: the served model name, then vLLM's engine settings (the server
    hands them to vLLM, its backend on GPUs). Typed values only, as for the Deployment's argv."""
    args = [f"--model_name={model_name(owner, serve)}"]
    v = serve.vllm
    if v is not None:
        args += [f"--max-model-len={v.max_model_len}", f"--dtype={v.dtype}"]
        args += [f"--gpu-memory-utilization={v.gpu_memory_utilization}"]
        args += [f"--tensor-parallel-size={v.tensor_parallel_size}"]
        args += ["--enforce-eager"] if v.enforce_eager else []
    return args


def build_inference_service(owner: Owner, spec: FineTuneJobSpec, settings: Settings) -> common.Manifest:
    """spec.serve with runtime kserve: one InferenceService ``<name>-serve`` in RawDeployment mode (a Deployment and
    a Service of KServe's, no Knative), model format huggingface from the workspace claim, ``replicas`` pods exactly
    (minReplicas = maxReplicas), owned by the FineTuneJob like every other child."""
    serve = spec.serve
    assert serve is not None and serve.runtime == "kserve"
    res = serve.resources
    meta = common.metadata(serve_name(owner), owner.namespace, owner.ref(), TUNED)
    meta["annotations"][KSERVE_DEPLOYMENT_MODE] = "RawDeployment"
    extra = res.pod_metadata
    predictor: dict[str, Any] = {
        "minReplicas": serve.replicas,
        "maxReplicas": serve.replicas,
        # the pods carry Labrador's labels (role serve): the operator sees their problems as it does its own pods'
        "labels": {**((extra.labels if extra else None) or {}), **meta["labels"]},
        "annotations": {**((extra.annotations if extra else None) or {}), **settings.pod_annotations},
        "model": {
            "modelFormat": {"name": "huggingface"},
            "storageUri": storage_uri(owner, spec),
            "args": kserve_args(owner, serve),
            "resources": common.container_resources(res, res.gpus),
        },
    }
    predictor |= common.placement(res, res.gpus)
    if not predictor["annotations"]:
        del predictor["annotations"]
    return {"apiVersion": KSERVE_API, "kind": "InferenceService", "metadata": meta, "spec": {"predictor": predictor}}
