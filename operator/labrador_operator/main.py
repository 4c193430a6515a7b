"""`labrador-operator`: runs kopf with Labrador's settings against the current kubeconfig or in-cluster config.

The handlers are registered by importing ``labrador_operator.handlers`` (tests run that module with
``kopf.testing.KopfRunner``). The chart's Deployment runs this same command.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os

import kopf
import prometheus_client

log = logging.getLogger("labrador")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="labrador-operator", description=__doc__.splitlines()[0])
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[], help="namespace to watch (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch the whole cluster (default)")
    p.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="liveness/readiness endpoint URL")
    p.add_argument("--metrics-port", type=int, default=8080, help="Prometheus metrics port (0 disables)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--webhook-port", type=int, default=0, help="serve admission webhooks on this port (0: off)")
    p.add_argument("--webhook-cert-dir", help="directory with tls.crt, tls.key and ca.crt for the webhook server")
    p.add_argument("--webhook-service", help="<service>.<namespace>[:<port>] the API server calls (in a cluster)")
    p.add_argument("--webhook-host", help="host name or IP the API server calls (outside a cluster)")
    p.add_argument(
        "--peering",
        help="kopf peering object to coordinate replicas through (ClusterKopfPeering when cluster-wide, KopfPeering "
        "in each watched namespace); without it the operator runs standalone",
    )
    p.add_argument(
        "--priority",
        type=int,
        help="peering priority: the highest live replica works, the others pause (default: random per process, so "
        "replicas of one Deployment never tie)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for flag, env in (
        (a.webhook_port, "LABRADOR_WEBHOOK_PORT"),
        (a.webhook_cert_dir, "LABRADOR_WEBHOOK_CERT_DIR"),
        (a.webhook_service, "LABRADOR_WEBHOOK_SERVICE"),
        (a.webhook_host, "LABRADOR_WEBHOOK_HOST"),
        (a.peering, "LABRADOR_PEERING"),
        (a.priority, "LABRADOR_PEERING_PRIORITY"),
    ):
        if flag is not None and flag != "":
            os.environ[env] = str(flag)
    os.environ["LABRADOR_NAMESPACES"] = ",".join(a.namespace)
    importlib.import_module("labrador_operator.handlers")  # registers every handler (webhooks per the env)
    from labrador_operator.handlers.startup import TransientMemories

    if a.peering:
        from labrador_operator.handlers.client import ensure_peering

        for obj in ensure_peering(a.peering, a.namespace):
            log.info("created peering object %s", obj)
    if a.metrics_port:
        prometheus_client.start_http_server(a.metrics_port)
    asyncio.run(
        kopf.operator(
            clusterwide=not a.namespace,
            namespaces=a.namespace,
            liveness_endpoint=a.liveness,
            memories=TransientMemories(),
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
