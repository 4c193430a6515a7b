"""`labrador-operator`: runs kopf with Labrador's handlers against the current kubeconfig or in-cluster config.

The configuration is built once, here, from the flags and the chart's environment (controller/config.py), and passed
down: to the controller runtime (cache, client, work queue) and, through it, to the kopf handlers, which are
registered explicitly into a registry of their own. The chart's Deployment runs this same command; the integration
tier runs :func:`run` in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import kopf
import prometheus_client

from labrador_operator.controller import config as config_mod
from labrador_operator.controller.config import OperatorConfig
from labrador_operator.controller.kopf_compat import TransientMemories, notice_namespaces_listed_by_the_watch
from labrador_operator.controller.runtime import Runtime
from labrador_operator.handlers import admission, children, finetune, sdg, startup, taxonomy

log = logging.getLogger("labrador")


def registry_for(rt: Runtime) -> kopf.OperatorRegistry:
    """A kopf registry with every Labrador handler, closed over ``rt``. Startup first: kopf runs startup handlers in
    registration order, and ``configure`` (settings, peering) must run before the sampler starts. Admission webhooks
    only with a webhook server configured: kopf refuses to start with admission handlers and no server."""
    registry = kopf.OperatorRegistry()
    startup.register(registry, rt)
    for module in (finetune, sdg, taxonomy, children):
        module.register(registry, rt)
    if rt.config.webhook is not None:
        admission.register(registry, rt)
    return registry


def run(
    config: OperatorConfig,
    *,
    runtime: Runtime | None = None,
    ready_flag: threading.Event | None = None,
    stop_flag: threading.Event | None = None,
) -> None:
    """Run the operator until ``stop_flag`` is set (or a signal, in the main thread)."""
    rt = runtime if runtime is not None else Runtime(config)
    notice_namespaces_listed_by_the_watch()
    kwargs: dict[str, Any] = {"ready_flag": ready_flag, "stop_flag": stop_flag}
    # the peering mode from the start (kopf lays out its watch streams by it before any startup handler runs);
    # handlers/startup.py's configure sets the rest (lifetime, mandatory)
    if config.peering is None:
        kwargs["standalone"] = True
    else:
        kwargs |= {"standalone": False, "peering_name": config.peering.name, "priority": config.peering.priority}
    asyncio.run(
        kopf.operator(
            registry=registry_for(rt),
            clusterwide=config.clusterwide,
            namespaces=list(config.namespaces),
            liveness_endpoint=config.liveness,
            memories=TransientMemories(),
            **{k: v for k, v in kwargs.items() if v is not None},
        )
    )


def main(argv: list[str] | None = None) -> int:
    config = config_mod.from_args(argv)
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rt = Runtime(config)
    if config.peering is not None:
        for obj in rt.client.ensure_peering(config.peering.name, config.namespaces):
            log.info("created peering object %s", obj)
    if config.metrics_port:
        prometheus_client.start_http_server(config.metrics_port)
    run(config, runtime=rt)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
