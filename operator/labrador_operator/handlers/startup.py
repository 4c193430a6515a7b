"""The operator's lifecycle in kopf: every kopf setting in one startup handler, the cache filled before the watches
start, the sampler started and stopped, login."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import kopf

from labrador_operator.constants import API_GROUP
from labrador_operator.controller.cache import MANAGED, PAGE
from labrador_operator.controller.config import PeeringConfig, WebhookConfig
from labrador_operator.controller.kopf_compat import queueing_settings
from labrador_operator.controller.runtime import Runtime
from labrador_operator.controller.sampler import Sampler


class NoDiffBase(kopf.DiffBaseStorage):
    """Labrador registers no change-detecting handlers (on.create/update/field/resume, daemons, timers): every handler
    is an index or an on.event that decides from the whole object. kopf still builds a diff base ("essence": a deep
    copy of each body, minus system fields) for every watch event — about a sixth of the event loop at 1,000 jobs —
    only for those handlers to use. This storage builds, stores and fetches nothing (tests/unit/test_handlers.py fails
    if a change-detecting handler is ever registered)."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: Any) -> Any:
        return {}

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


def register(registry: kopf.OperatorRegistry, rt: Runtime) -> None:
    """Startup (in this order: kopf runs them as registered), cleanup and login handlers."""
    config = rt.config

    @kopf.on.startup(id="configure", registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = f"{API_GROUP}/finalizer"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
        settings.persistence.diffbase_storage = NoDiffBase()
        settings.posting.level = logging.WARNING  # only warnings and errors become k8s Events from logs
        settings.watching.server_timeout = 300
        # children are filtered by the API server, not after kopf has decoded every Pod, Job, ConfigMap and Service
        # of the cluster; initial lists come in pages (cache.PAGE)
        for selector in (("batch", "jobs"), ("v1", "pods"), ("v1", "configmaps"), ("v1", "services")):
            settings.watching.label_selectors[selector] = MANAGED
        settings.watching.chunk_size = PAGE
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 60
        configure_peering(settings, config.peering)
        # kopf's threads run only the sync startup/cleanup handlers and admission webhooks: the watch handlers are
        # async and the reconciles run in the runtime's work queue (LABRADOR_MAX_WORKERS threads)
        settings.execution.max_workers = 8
        # a watched object's kopf worker (a task, a queue, the last body) lingers this long after its last event
        # (kopf: 5 s); after a restart every object is listed within seconds (1,000 finished jobs: 312 MiB RSS with
        # 5 s, 243 with 1 s, 146 with 0.5 s and pages of 100)
        queueing_settings(settings).idle_timeout = 0.5
        # kopf logs every handler call at INFO ("Handler ... succeeded"): thousands of lines a second at scale
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        server = webhook_server(config.webhook)
        if server is not None:
            settings.admission.server = server
            settings.admission.managed = API_GROUP

    @kopf.on.startup(id="load_cache", registry=registry)
    def load_cache(logger: logging.Logger, **_: Any) -> None:
        """One LIST per kind fills the cache before kopf starts watching (it runs startup handlers first)."""
        loaded = rt.client.load_cache(rt.cache, config.namespaces)
        logger.info(f"cache loaded: {loaded} objects {rt.cache.sizes()}")

    @kopf.on.startup(id="start_sampler", registry=registry)
    def start_sampler(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
        sampler = Sampler(rt, settings)
        sampler.start()
        memo["labrador_sampler"] = sampler

    @kopf.on.cleanup(id="stop_sampler", registry=registry)
    def stop_sampler(memo: kopf.Memo, **_: Any) -> None:
        sampler = memo.get("labrador_sampler")
        if sampler is not None:
            sampler.close()

    @kopf.on.cleanup(id="stop_reconciles", registry=registry)
    def stop_reconciles(**_: Any) -> None:
        rt.shutdown()

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In-cluster service account first, then $KUBECONFIG (read at login time, not at import time)."""
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


def configure_peering(settings: kopf.OperatorSettings, peering: PeeringConfig | None) -> None:
    """Standalone unless a peering object is named: then replicas see each other through it, the one with the
    highest priority works and the others pause until its heartbeat (every lifetime/2 s) stops."""
    settings.peering.standalone = peering is None
    if peering is None:
        return
    settings.peering.name = peering.name
    settings.peering.mandatory = True  # the chart creates the object: a missing one is an error, not a silent solo
    settings.peering.lifetime = peering.lifetime
    settings.peering.priority = peering.priority


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


def webhook_server(webhook: WebhookConfig | None) -> kopf.WebhookServer | None:
    """The webhook server the configuration asks for, or None when webhooks are off.

    Certificates come from the configured directory (tls.crt, tls.key, ca.crt — made with openssl by the chart's
    hook or the test fixture; kopf's own self-signed certificates fail on current OpenSSL)."""
    if webhook is None:
        return None
    common: dict[str, Any] = {
        "addr": webhook.addr,
        "port": webhook.port,
        "certfile": str(webhook.cert_dir / "tls.crt"),
        "pkeyfile": str(webhook.cert_dir / "tls.key"),
        "cafile": str(webhook.cert_dir / "ca.crt"),
    }
    if webhook.service:  # "<name>.<namespace>[:<port>]"
        name_ns, _, svc_port = webhook.service.partition(":")
        name, _, namespace = name_ns.partition(".")
        return ServiceWebhookServer(service=name, namespace=namespace, service_port=int(svc_port or 443), **common)
    return kopf.WebhookServer(host=webhook.host, **common)
