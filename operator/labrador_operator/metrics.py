"""The operator's own Prometheus metrics (served by labrador-operator on --metrics-port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("labrador_operator_reconciles_total", "Reconciles by kind and result", ["kind", "result"])
RECONCILE_SECONDS = Histogram(
    "labrador_operator_reconcile_duration_seconds",
    "Time spent deciding and applying one reconcile",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CHILDREN_CREATED = Counter("labrador_operator_children_created_total", "Children created", ["kind", "child"])
STATUS_PATCHES = Counter("labrador_operator_status_patches_total", "Status patches written", ["kind"])
JOBS_BY_PHASE = Gauge("labrador_operator_resources", "Labrador resources by kind and phase", ["kind", "phase"])
#: entries Cache.resync dropped because two LISTs in a row lacked them: deletions the watches missed ("ghosts"), by
#: cache store (finetunejobs, syntheticdatajobs, taxonomies, jobs, pods, configmaps, services)
CACHE_FORGOTTEN = Counter(
    "labrador_operator_cache_forgotten_total",
    "Cached objects the resync dropped (deletions the watches missed)",
    ["store"],
)
