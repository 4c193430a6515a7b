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
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("labrador.workqueue")

#: (key, failures in a row, the exception) after each failed reconcile
OnFailure = Callable[[Hashable, int, BaseException], object]


class DelayHeap:
    """Calls ``fire(key)`` once each scheduled delay has passed: one heap and one thread for every waiting retry
    (a timer thread per failing key would be a thousand threads when a quota blocks a thousand jobs)."""

    def __init__(self, fire: Callable[[Hashable], object], name: str = "labrador-retry") -> None:
        self._fire, self._name = fire, name
        self._heap: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def schedule(self, key: Hashable, delay: float) -> None:
        with self._cv:
            if self._stopped:
                return
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), key))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cv.notify()

    def __len__(self) -> int:
        with self._cv:
            return len(self._heap)

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cv.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._stopped:
                    return
                _, _, key = heapq.heappop(self._heap)
            try:
                self._fire(key)
            except Exception:
                log.exception("retry of %s could not be queued", key)

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._heap.clear()
            self._cv.notify_all()


class WorkQueue:
    """A reconcile that raises is retried after ``retry_base`` s, doubling per failure in a row up to ``retry_max``
    (an API hiccup never leaves an object stuck until its next event); ``on_failure`` hears of every failure (the
    operator turns repeated ones into a condition on the resource), ``on_recovered`` of the first success after
    failures. ``on_idle`` runs whenever the queue drains (the operator hands freed heap back to the system then:
    memory.py)."""

    def __init__(
        self,
        handler: Callable[[Hashable], None],
        workers: int,
        name: str = "labrador-reconcile",
        retry_base: float = 1.0,
        retry_max: float = 60.0,
        on_idle: Callable[[], object] | None = None,
        on_failure: OnFailure | None = None,
        on_recovered: Callable[[Hashable], object] | None = None,
        describe: Callable[[BaseException], str | None] | None = None,
    ) -> None:
        self._handler = handler
        self._on_idle = on_idle  # called (in a worker thread) each time the last queued reconcile has finished
        self._on_failure, self._on_recovered = on_failure, on_recovered
        #: a one-line account of an expected failure (an API refusal), logged without a traceback; None: a bug
        self._describe = describe
        self._retries = DelayHeap(self._retry, name=f"{name}-retry")
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

    def add_after(self, key: Hashable, delay: float) -> None:
        """Name ``key`` again after ``delay`` seconds (a condition only time can change: the retry heap, no thread
        of its own)."""
        self._retries.schedule(key, delay)

    def _ensure_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
        return self._pool

    def exclusive(self, key: Hashable, fn: Callable[[], object], timeout: float = 30.0) -> bool:
        """Run ``fn`` while no reconcile of ``key`` runs, and none starts until it returns (the sampler's progress
        write: it must never land after a reconcile that finished the job). False when the key stayed busy."""
        with self._lock:
            if not self._idle.wait_for(lambda: key not in self._processing, timeout):
                return False
            self._processing.add(key)
        try:
            fn()
        finally:
            self._release(key)
        return True

    def _release(self, key: Hashable) -> None:
        """``key`` is no longer being worked on: run it again if it was named meanwhile; wake waiters."""
        with self._lock:
            self._processing.discard(key)
            again = key in self._dirty
            pool = self._pool
            idle = not self._dirty and not self._processing
            self._idle.notify_all()
        if again and pool is not None:
            pool.submit(self._run, key)
        if idle and self._on_idle is not None:
            try:
                self._on_idle()
            except Exception:
                log.exception("idle callback failed")

    def _run(self, key: Hashable) -> None:
        with self._lock:
            if key in self._processing:  # held by exclusive(); it submits the key again when it returns
                return
            self._dirty.discard(key)
            self._processing.add(key)
            context = self._context.copy() if self._context is not None else contextvars.Context()
        try:
            context.run(self._handler, key)
        except Exception as exc:
            with self._lock:
                failures = self._failures[key] = self._failures.get(key, 0) + 1
            delay = min(self._retry_base * 2 ** (failures - 1), self._retry_max)
            said = self._describe(exc) if self._describe is not None else None
            if said is None:
                log.exception("reconciling %s failed (%d in a row); again in %.0f s", key, failures, delay)
            else:
                log.warning("reconciling %s failed (%d in a row): %s; again in %.0f s", key, failures, said, delay)
            self._retries.schedule(key, delay)
            if self._on_failure is not None:
                self._call(context, self._on_failure, key, failures, exc)
        else:
            with self._lock:
                recovered = self._failures.pop(key, None) is not None
            if recovered and self._on_recovered is not None:
                self._call(context, self._on_recovered, key)
        finally:
            self._release(key)

    @staticmethod
    def _call(context: contextvars.Context, fn: Callable[..., object], *args: object) -> None:
        try:
            context.run(fn, *args)
        except Exception:
            log.exception("failure hook for %s failed", args[0])

    def waiting_retries(self) -> int:
        return len(self._retries)

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
        self._retries.stop()
        with self._lock:
            pool, self._pool = self._pool, None
            self._dirty.clear()
            self._failures.clear()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
