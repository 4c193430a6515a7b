"""The operator process's configuration: one typed value, built once at startup (``labrador-operator``'s flags and
the chart's environment) and passed down to everything that needs it. Nothing reads the environment after that."""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from labrador_operator.settings import Settings


@dataclass(frozen=True)
class WebhookConfig:
    """The admission webhook server: kopf serves it, the API server calls it."""

    port: int
    #: tls.crt, tls.key and ca.crt (made with openssl by the chart's hook, cert-manager or the test fixture)
    cert_dir: Path = Path("/etc/labrador/webhook-certs")
    addr: str = "0.0.0.0"
    #: "<service>.<namespace>[:<port>]" the API server calls in a cluster (URLs with cluster DNS names would not
    #: resolve from the API server)
    service: str | None = None
    #: host name or IP the API server calls when the operator runs outside the cluster
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class PeeringConfig:
    """Replicas coordinate through a kopf peering object: the one with the highest priority works, the others
    pause until its heartbeat (every lifetime/2 s) stops."""

    name: str
    #: random per process by default, so replicas of one Deployment never tie
    priority: int = field(default_factory=lambda: secrets.randbelow(2**31 - 1) + 1)
    lifetime: int = 60


@dataclass(frozen=True)
class OperatorConfig:
    #: what builders and reconciles need (images, timings, uid, ...)
    settings: Settings = field(default_factory=Settings)
    #: namespaces watched (names or globs, ``!`` excludes); empty: the whole cluster
    namespaces: tuple[str, ...] = ()
    liveness: str | None = "http://0.0.0.0:8081/healthz"
    metrics_port: int = 8080
    log_level: str = "info"
    webhook: WebhookConfig | None = None
    peering: PeeringConfig | None = None
    #: outside a cluster: the kubeconfig file ($KUBECONFIG when the process starts); in a pod the service account
    kubeconfig: str | None = None

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="labrador-operator",
        description="runs kopf with Labrador's handlers against the current kubeconfig or in-cluster config",
    )
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
    return p


def from_args(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> OperatorConfig:
    """The configuration from ``labrador-operator``'s flags, then the environment (the chart sets ``LABRADOR_*``);
    a flag wins over its variable."""
    a = parser().parse_args(argv)
    e = os.environ if env is None else env

    def pick(flag: object, var: str) -> str | None:
        return str(flag) if flag not in (None, "") else (e.get(var) or None)

    webhook = None
    port = int(pick(a.webhook_port or None, "LABRADOR_WEBHOOK_PORT") or 0)
    if port:
        cert_dir = pick(a.webhook_cert_dir, "LABRADOR_WEBHOOK_CERT_DIR")
        webhook = WebhookConfig(
            port=port,
            cert_dir=Path(cert_dir) if cert_dir else WebhookConfig.cert_dir,
            addr=e.get("LABRADOR_WEBHOOK_ADDR") or WebhookConfig.addr,
            service=pick(a.webhook_service, "LABRADOR_WEBHOOK_SERVICE"),
            host=pick(a.webhook_host, "LABRADOR_WEBHOOK_HOST") or WebhookConfig.host,
        )
    peering = None
    if name := pick(a.peering, "LABRADOR_PEERING"):
        priority = pick(a.priority, "LABRADOR_PEERING_PRIORITY")
        lifetime = int(e.get("LABRADOR_PEERING_LIFETIME") or 60)
        peering = PeeringConfig(name, int(priority), lifetime) if priority else PeeringConfig(name, lifetime=lifetime)
    namespaces = tuple(a.namespace)
    return OperatorConfig(
        settings=Settings.from_env(e),
        namespaces=namespaces,
        liveness=a.liveness or None,
        metrics_port=a.metrics_port,
        log_level=a.log_level,
        webhook=webhook,
        peering=peering,
        kubeconfig=e.get("KUBECONFIG") or None,
    )
