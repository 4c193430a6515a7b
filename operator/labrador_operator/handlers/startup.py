"""Every kopf setting in one place."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kopf
from kopf._core.reactor import inventory  # not re-exported by kopf; kopf.operator(memories=...) takes one

from labrador_operator.cache import CACHE, MANAGED, PAGE
from labrador_operator.constants import API_GROUP
from labrador_operator.handlers import client
from labrador_operator.handlers.apply import QUEUE
from labrador_operator.settings import Settings


class NoDiffBase(kopf.DiffBaseStorage):
    """Labrador registers no change-detecting handlers (on.create/update/field/resume, daemons, timers): every handler
    is an index or an on.event that decides from the whole object. kopf still builds a diff base ("essence": a deep
    copy of each body, minus system fields) for every watch event — about a sixth of the event loop at 1,000 jobs —
    only for those handlers to use. This storage builds, stores and fetches nothing (tests/unit/test_sampler.py fails
    if a change-detecting handler is ever registered)."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: Any) -> Any:
        return {}

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


class TransientMemories(inventory.ResourceMemories):
    """kopf keeps a record per watched object for as long as the object exists (its memo, error throttler, daemon
    and index state: ~0.75 KiB; 30,000 records for 5,000 jobs with their children). Labrador uses none of it — no
    daemons, timers, indexes, memos or change-detecting handlers (tests/unit/test_sampler.py) — so each event gets a
    fresh record that goes with the event, as kopf already does for admission requests. `labrador-operator` passes
    this to kopf.operator()."""

    async def recall(
        self,
        raw_body: Any,
        *,
        memobase: Any = None,
        noticed_by_listing: bool = False,
        ephemeral: bool = False,
    ) -> inventory.ResourceMemory:
        return await super().recall(raw_body, memobase=memobase, noticed_by_listing=noticed_by_listing, ephemeral=True)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = f"{API_GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.level = logging.WARNING  # only warnings and errors become k8s Events from logs
    settings.watching.server_timeout = 300
    # children are filtered by the API server, not after kopf has decoded every Pod, Job, ConfigMap and Service of
    # the cluster; initial lists come in pages (cache.PAGE)
    for selector in (("batch", "jobs"), ("v1", "pods"), ("v1", "configmaps"), ("v1", "services")):
        settings.watching.label_selectors[selector] = MANAGED
    settings.watching.chunk_size = PAGE
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    configure_peering(settings, os.environ)
    # kopf's threads run only the sync startup/cleanup handlers and admission webhooks: the watch handlers are async
    # and the reconciles run in handlers/apply.py's queue (LABRADOR_MAX_WORKERS threads)
    settings.execution.max_workers = 8
    # a watched object's kopf worker (a task, a queue, the last body) lingers this long after its last event (kopf:
    # 5 s); after a restart every object is listed within seconds (1,000 finished jobs: 312 MiB RSS with 5 s, 243 with
    # 1 s, 146 with 0.5 s and pages of 100)
    queueing = getattr(settings, "queueing", None) or settings.batching  # renamed in kopf 1.4x
    queueing.idle_timeout = 0.5
    # kopf logs every handler call at INFO ("Handler ... succeeded"): thousands of lines a second at scale
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    server = webhook_server(os.environ)
    if server is not None:
        settings.admission.server = server
        settings.admission.managed = API_GROUP


@kopf.on.startup()
def load_cache(logger: logging.Logger, **_: Any) -> None:
    """One LIST per kind fills the cache before kopf starts watching (it runs startup handlers first)."""
    loaded = client.load_cache(CACHE, Settings.from_env().namespaces)
    logger.info(f"cache loaded: {loaded} objects {CACHE.sizes()}")


@kopf.on.cleanup()
def stop_reconciles(**_: Any) -> None:
    """Reconciles not yet started are dropped (a restart lists everything again); running ones finish."""
    QUEUE.shutdown()


def configure_peering(settings: kopf.OperatorSettings, env: Mapping[str, str]) -> None:
    """Standalone unless LABRADOR_PEERING names a peering object: then replicas see each other through it, the one
    with the highest priority works and the others pause until its heartbeat (every lifetime/2 s) stops."""
    name = env.get("LABRADOR_PEERING", "")
    settings.peering.standalone = not name
    if not name:
        return
    settings.peering.name = name
    settings.peering.mandatory = True  # the chart creates the object: a missing one is an error, not a silent solo
    settings.peering.lifetime = int(env.get("LABRADOR_PEERING_LIFETIME", "60"))
    priority = env.get("LABRADOR_PEERING_PRIORITY")
    settings.peering.priority = int(priority) if priority else secrets.randbelow(2**31 - 1) + 1


class ServiceWebhookServer(kopf.WebhookServer):
    """In a cluster the API server reaches the webhook through its Service (URLs with cluster DNS names would not
    resolve from the API server); kopf's server listens as usual, the client config names the Service."""

    def __init__(self, *, service: str, namespace: str, service_port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service, self.namespace, self.service_port = service, namespace, service_port

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        async for config in super().__call__(fn):
            path = urlsplit(config["url"]).path
            out: dict[str, Any] = {
                "service": {"name": self.service, "namespace": self.namespace, "port": self.service_port, "path": path}
            }
            if "caBundle" in config:
                out["caBundle"] = config["caBundle"]
            yield out


def webhook_server(env: Mapping[str, str]) -> kopf.WebhookServer | None:
    """The webhook server the environment asks for (LABRADOR_WEBHOOK_*), or None when webhooks are off.

    Certificates come from LABRADOR_WEBHOOK_CERT_DIR (tls.crt, tls.key, ca.crt — made with openssl by the chart's
    hook or the test fixture; kopf's own self-signed certificates fail on current OpenSSL)."""
    port = int(env.get("LABRADOR_WEBHOOK_PORT", "0") or 0)
    if not port:
        return None
    certs = Path(env.get("LABRADOR_WEBHOOK_CERT_DIR", "/etc/labrador/webhook-certs"))
    common: dict[str, Any] = {
        "addr": env.get("LABRADOR_WEBHOOK_ADDR", "0.0.0.0"),
        "port": port,
        "certfile": str(certs / "tls.crt"),
        "pkeyfile": str(certs / "tls.key"),
        "cafile": str(certs / "ca.crt"),
    }
    service = env.get("LABRADOR_WEBHOOK_SERVICE")  # "<name>.<namespace>[:<port>]"
    if service:
        name_ns, _, svc_port = service.partition(":")
        name, _, namespace = name_ns.partition(".")
        return ServiceWebhookServer(service=name, namespace=namespace, service_port=int(svc_port or 443), **common)
    return kopf.WebhookServer(host=env.get("LABRADOR_WEBHOOK_HOST", "127.0.0.1"), **common)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account first, then $KUBECONFIG (read at login time, not at import time)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
