"""One background sampler for the whole operator: progress of running jobs and Taxonomy refresh windows.

Not a kopf timer per object: a timer puts kopf's finalizer on every FineTuneJob and SyntheticDataJob it runs for
(two writes per job, and a delete that waits for the operator) and keeps a task per object. This thread walks the
parents in the cache instead: every running job is scraped once per ``progress_interval_seconds``, the scrapes spread
evenly over the interval and never more than ``progress_max_per_second`` in all, at most ``progress_concurrency`` at a
time (an unreachable pod costs its 2 s timeout to one slot, not to the round). Taxonomies with a ``refreshInterval``
are re-reconciled every ``refresh_check_seconds``; a reconcile writes only when a new window has begun.

With peering on, a replica that another live peer outranks (kopf pauses its handlers) samples nothing: the sampler
reads the peering object each round and applies kopf's rule (a higher priority, or the same priority twice, wins).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import kopf

from labrador_operator.controller import finetune, memory, sdg, taxonomy
from labrador_operator.controller.cache import PLURAL_OF_LABEL
from labrador_operator.reconcile.observe import parse_time

if TYPE_CHECKING:
    from labrador_operator.controller.runtime import Runtime

log = logging.getLogger("labrador.sampler")
Sample = Callable[["Runtime", dict[str, Any]], None]

#: (plural, phase that is sampled, function that samples one)
PROGRESS: tuple[tuple[str, str, Sample], ...] = (
    (finetune.PLURAL, "Running", finetune.sample_progress),
    (sdg.PLURAL, "Running", sdg.sample_progress),
)


def paused_by_peers(status: dict[str, Any], priority: int, now: datetime) -> bool:
    """kopf's peering rule, read from the peering object's status (``{identity: {priority, lifetime, lastseen}}``):
    this replica (one of the live entries with ``priority``) pauses when a live peer has a higher priority, or when
    another has the same one."""
    same = 0
    for info in status.values():
        if not isinstance(info, dict):
            continue
        try:
            seen = parse_time(info.get("lastseen"))
        except (TypeError, ValueError):
            continue
        lifetime = info.get("lifetime")
        if seen is None or not isinstance(lifetime, int | float):
            continue
        if seen.tzinfo is None:  # kopf writes UTC; older versions without an offset
            seen = seen.replace(tzinfo=UTC)
        if (now - seen).total_seconds() >= lifetime:
            continue
        p = info.get("priority", 0)
        if p > priority:
            return True
        same += p == priority
    return same > 1


class Sampler:
    def __init__(
        self,
        rt: Runtime,
        kopf_settings: kopf.OperatorSettings,
        progress: tuple[tuple[str, str, Sample], ...] = PROGRESS,
    ):
        self.rt, self.cache, self.settings = rt, rt.cache, rt.settings
        self.kopf_settings, self.progress = kopf_settings, progress
        self.namespaces = rt.config.namespaces
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(self.settings.progress_concurrency, thread_name_prefix="labrador-sampler")
        self.slots = threading.Semaphore(self.settings.progress_concurrency)
        self.thread = threading.Thread(target=self.run, name="labrador-sampler", daemon=True)
        self.next_refresh = time.monotonic() + self.settings.refresh_check_seconds
        self.next_resync = time.monotonic() + self.settings.cache_resync_seconds
        self.was_paused = False

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.pool.shutdown(wait=False, cancel_futures=True)

    def running(self) -> Iterator[tuple[Sample, dict[str, Any]]]:
        """Each parent the cache has in a sampled phase, unless our own last write has moved it on since."""
        for plural, phase, fn in self.progress:
            for obj in self.cache.parents(plural, phases=(phase,)):
                if self.rt.current_status(plural, obj).get("phase") == phase:  # not what we wrote since
                    yield fn, obj

    def refreshing(self) -> Iterator[tuple[Sample, dict[str, Any]]]:
        for obj in self.cache.parents(taxonomy.PLURAL):
            if (obj.get("spec") or {}).get("refreshInterval"):
                yield taxonomy.refresh, obj

    def paused(self) -> bool:
        peering = self.kopf_settings.peering
        if peering.standalone:
            return False
        plain = [ns for ns in self.namespaces if not any(c in ns for c in "*?[!")]
        try:
            if peering.clusterwide or not plain:
                obj = self.rt.client.get_object("kopf.dev", "v1", "clusterkopfpeerings", peering.name)
            else:
                obj = self.rt.client.get_object("kopf.dev", "v1", "kopfpeerings", peering.name, namespace=plain[0])
        except Exception as e:  # an API hiccup: skip this round rather than write as a possible standby
            log.warning("cannot read peering %s: %s", peering.name, e)
            return True
        return obj is None or paused_by_peers(obj.get("status") or {}, peering.priority, datetime.now(UTC))

    def run(self) -> None:
        interval = self.settings.progress_interval_seconds
        min_gap = 1.0 / self.settings.progress_max_per_second
        while not self.stop.is_set():
            t0 = time.monotonic()
            work: list[tuple[Sample, dict[str, Any]]] = []
            paused = self.paused()
            if paused != self.was_paused:
                log.info("sampler %s", "paused: another replica outranks this one" if paused else "active")
                self.was_paused = paused
                if not paused:  # taking over: what changed while kopf's watches were paused is not in the cache
                    self.reload()
            if not paused:
                work = list(self.running())
                if t0 >= self.next_refresh:
                    work += list(self.refreshing())
                    self.next_refresh = t0 + self.settings.refresh_check_seconds
                if t0 >= self.next_resync:
                    self.resync()
                    self.next_resync = t0 + self.settings.cache_resync_seconds
            gap = max(interval / len(work), min_gap) if work else 0.0
            for fn, obj in work:
                self.slots.acquire()
                if self.stop.is_set():
                    return
                self.pool.submit(self._one, fn, obj)
                if self.stop.wait(gap):
                    return
            memory.maybe_trim()
            self.stop.wait(max(interval - (time.monotonic() - t0), 0.05))

    def resync(self) -> None:
        """Ghosts out of the cache (deletions a watch relist missed); the parents they belonged to reconcile again."""
        try:
            touched = self.rt.client.resync_cache(self.cache, self.namespaces)
        except Exception as e:
            log.warning("cache resync failed (next try in %.0f s): %s", self.settings.cache_resync_seconds, e)
            return
        for namespace, kind, name in touched:
            self.rt.enqueue(PLURAL_OF_LABEL[kind], namespace, name)

    def reload(self) -> None:
        try:
            self.rt.client.load_cache(self.cache, self.namespaces, prune_only=True)
        except Exception:
            log.exception("reloading the cache failed; the watch events keep it current from here")

    def _one(self, fn: Sample, obj: dict[str, Any]) -> None:
        try:
            fn(self.rt, obj)
        except Exception as e:  # one job's scrape never stops the others; the traceback at debug level
            meta = obj.get("metadata") or {}
            log.warning(
                "sampling %s/%s failed: %s", meta.get("namespace"), meta.get("name"), e,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )  # fmt: skip
        finally:
            self.slots.release()
