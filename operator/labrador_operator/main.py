"""`labrador-operator`: runs kopf with Labrador's settings against the current kubeconfig or in-cluster config.

The reconcilers (Taxonomy, SyntheticDataJob, FineTuneJob) are registered by importing
``labrador_operator.handlers``; until they exist the operator starts, serves its probes and metrics, and watches
nothing. The chart's Deployment runs this same command.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
from typing import Any

import kopf
import prometheus_client

from labrador_operator.constants import API_GROUP

log = logging.getLogger("labrador")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Every kopf setting in one place."""
    settings.persistence.finalizer = f"{API_GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=API_GROUP)
    settings.posting.level = logging.WARNING  # only warnings and errors become k8s Events from logs
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.peering.standalone = True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="labrador-operator", description=__doc__.splitlines()[0])
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[], help="namespace to watch (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch the whole cluster (default)")
    p.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="liveness/readiness endpoint URL")
    p.add_argument("--metrics-port", type=int, default=8080, help="Prometheus metrics port (0 disables)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if importlib.util.find_spec("labrador_operator.handlers") is not None:
        importlib.import_module("labrador_operator.handlers")
    if a.metrics_port:
        prometheus_client.start_http_server(a.metrics_port)
    asyncio.run(
        kopf.operator(
            clusterwide=not a.namespace,
            namespaces=a.namespace,
            liveness_endpoint=a.liveness,
            standalone=True,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
