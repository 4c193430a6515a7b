"""Reconciles run here, not in kopf's per-object workers: a watch event only updates the cache and names the object
to reconcile; a pool of threads reconciles each named object from the cache.

The semantics of controller-runtime's work queue: a key waiting is queued once however many events name it (a burst
of Pod and Job events of one parent is one reconcile); a key is never reconciled by two threads at once, and a key
named again while it is being reconciled is reconciled once more afterwards (the later event is never lost).

Why: kopf holds each event's decoded body until its handler returns. With the reconciles (API writes) in the
handlers, thousands of bodies waited for a free thread whenever events came faster than writes went out — the
initial listing of 30,000 objects after a restart, a burst of 1,000 new jobs — and the memory they took was never
given back to the system (CPython keeps an arena while any object in it lives). Handlers now return within
microseconds; the bodies go as they came.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("labrador.workqueue")


class WorkQueue:
    """A reconcile that raises is retried after ``retry_base`` s, doubling per failure in a row up to ``retry_max``
    (an API hiccup never leaves an object stuck until its next event). ``on_idle`` runs whenever the queue drains
    (the operator hands freed heap back to the system then: memory.py)."""

    def __init__(
        self,
        handler: Callable[[Hashable], None],
        workers: int,
        name: str = "labrador-reconcile",
        retry_base: float = 1.0,
        retry_max: float = 60.0,
        on_idle: Callable[[], object] | None = None,
    ) -> None:
        self._handler = handler
        self._on_idle = on_idle  # called (in a worker thread) each time the last queued reconcile has finished
        self._retry_base, self._retry_max = retry_base, retry_max
        self._failures: dict[Hashable, int] = {}
        self._lock = threading.Lock()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._workers = workers
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        #: the context of the last add() from kopf's loop (kopf.event() needs kopf's context variables); reconciles
        #: run in a copy of it
        self._context: contextvars.Context | None = None
        self._idle = threading.Condition(self._lock)

    def add(self, key: Hashable, context: contextvars.Context | None = None) -> None:
        """Name ``key`` for a reconcile. ``context``: pass ``contextvars.copy_context()`` from kopf's handlers."""
        with self._lock:
            if context is not None:
                self._context = context
            if key in self._dirty:
                return
            self._dirty.add(key)
            if key in self._processing:
                return  # _run queues it again when the current reconcile ends
            pool = self._ensure_pool()
        pool.submit(self._run, key)

    def _ensure_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
        return self._pool

    def _run(self, key: Hashable) -> None:
        with self._lock:
            self._dirty.discard(key)
            self._processing.add(key)
            context = self._context.copy() if self._context is not None else contextvars.Context()
        try:
            context.run(self._handler, key)
        except Exception:
            with self._lock:
                failures = self._failures[key] = self._failures.get(key, 0) + 1
            delay = min(self._retry_base * 2 ** (failures - 1), self._retry_max)
            log.exception("reconciling %s failed (%d in a row); again in %.0f s", key, failures, delay)
            timer = threading.Timer(delay, self._retry, (key,))
            timer.daemon = True
            timer.start()
        else:
            with self._lock:
                self._failures.pop(key, None)
        finally:
            with self._lock:
                self._processing.discard(key)
                again = key in self._dirty
                pool = self._pool
                idle = not self._dirty and not self._processing
                if idle:
                    self._idle.notify_all()
            if again and pool is not None:
                pool.submit(self._run, key)
            if idle and self._on_idle is not None:
                try:
                    self._on_idle()
                except Exception:
                    log.exception("idle callback failed")

    def _retry(self, key: Hashable) -> None:
        if self._pool is not None:  # not after shutdown
            self.add(key)

    def pending(self) -> int:
        with self._lock:
            return len(self._dirty | self._processing)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or running (tests); False on timeout."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._dirty and not self._processing, timeout)

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            self._dirty.clear()
            self._failures.clear()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
