"""The reconcile queue (controller/workqueue.py): one reconcile per key at a time, bursts coalesced, a key
named during its own reconcile reconciled once more, failures isolated, kopf's context carried into the threads."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import Counter
from collections.abc import Hashable, Iterator

import pytest

from labrador_operator.controller.workqueue import WorkQueue

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR")


@pytest.fixture
def queue_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The queue's log (failures with tracebacks) to caplog only: `pytest tests` runs these in the process where the
    integration tier's operator still runs, and that fixture fails on any traceback in the process's log."""
    logger = logging.getLogger("labrador.workqueue")
    logger.addHandler(caplog.handler)
    logger.propagate = False
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.propagate = True


def test_burst_of_one_key_is_one_reconcile_while_it_waits() -> None:
    gate = threading.Event()
    calls: Counter[Hashable] = Counter()

    def handler(key: Hashable) -> None:
        if key == "blocker":
            gate.wait(5)
        calls[key] += 1

    q = WorkQueue(handler, workers=1)
    q.add("blocker")  # occupies the only thread
    for _ in range(50):
        q.add("a")
        q.add("b")
    gate.set()
    assert q.join(5)
    assert calls == {"blocker": 1, "a": 1, "b": 1}
    q.shutdown()


def test_key_named_during_its_reconcile_runs_again_never_concurrently() -> None:
    running = threading.Event()
    release = threading.Event()
    active, overlap, calls = [0], [False], [0]
    lock = threading.Lock()

    def handler(key: Hashable) -> None:
        with lock:
            active[0] += 1
            overlap[0] |= active[0] > 1
            calls[0] += 1
        if calls[0] == 1:
            running.set()
            release.wait(5)
        with lock:
            active[0] -= 1

    q = WorkQueue(handler, workers=8)
    q.add("k")
    assert running.wait(5)
    q.add("k")  # while the first reconcile runs: queued for after it, not run beside it
    q.add("k")
    assert calls[0] == 1 and q.pending() == 1  # one key, running and named again
    release.set()
    assert q.join(5)
    assert calls[0] == 2 and not overlap[0]
    q.shutdown()


def test_a_failing_reconcile_does_not_stop_the_others(queue_log: pytest.LogCaptureFixture) -> None:
    seen: list[Hashable] = []

    def handler(key: Hashable) -> None:
        if key == "bad":
            raise RuntimeError("boom")
        seen.append(key)

    q = WorkQueue(handler, workers=2, retry_base=60)
    for k in ("bad", "good", "bad"):
        q.add(k)
    assert q.join(5)
    q.add("after")
    assert q.join(5)
    assert "good" in seen and "after" in seen
    assert "reconciling bad failed (1 in a row); again in 60 s" in queue_log.text
    q.shutdown()


def test_a_failed_reconcile_is_retried_with_backoff_until_it_succeeds(queue_log: pytest.LogCaptureFixture) -> None:
    """No event may come for a while (a job waiting on nothing): the queue itself tries again, 0.05 s, 0.1 s, ..."""
    times: list[float] = []
    succeeded = threading.Event()

    def handler(key: Hashable) -> None:
        times.append(time.monotonic())
        if len(times) < 3:
            raise RuntimeError("API hiccup")
        succeeded.set()

    q = WorkQueue(handler, workers=1, retry_base=0.05, retry_max=1)
    q.add("k")
    assert succeeded.wait(5) and q.join(5)
    assert len(times) == 3
    assert times[1] - times[0] >= 0.05 and times[2] - times[1] >= 0.1
    assert "(2 in a row); again in 0 s" in queue_log.text  # 0.1 s, printed rounded
    assert q.waiting_retries() == 0  # succeeded: no retry left waiting
    q.shutdown()


def test_on_idle_runs_when_the_queue_drains() -> None:
    idle: list[int] = []
    drained = threading.Event()
    gate = threading.Event()

    def on_idle() -> None:
        idle.append(q.pending())
        drained.set()

    q = WorkQueue(lambda key: gate.wait(5), workers=4, on_idle=on_idle)
    for k in range(10):
        q.add(k)
    assert idle == [] and q.pending() == 10  # still busy: every reconcile waits at the gate
    gate.set()
    assert q.join(5) and drained.wait(5)
    assert set(idle) == {0}
    q.shutdown()


def test_reconciles_run_in_the_context_given_with_add() -> None:
    """kopf.event() needs kopf's context variables, which a plain thread does not have."""
    got: dict[Hashable, str | None] = {}
    q = WorkQueue(lambda key: got.__setitem__(key, VAR.get(None)), workers=2)

    def from_handler() -> None:
        VAR.set("kopf")
        q.add("from-event", contextvars.copy_context())

    contextvars.Context().run(from_handler)
    assert q.join(5)
    q.add("from-sampler")  # no context of its own: the last one given
    assert q.join(5)
    assert got == {"from-event": "kopf", "from-sampler": "kopf"}
    assert q.pending() == 0
    q.shutdown()


def test_failures_are_reported_and_retries_share_one_thread(queue_log: pytest.LogCaptureFixture) -> None:
    """200 keys failing at once wait in one delay heap (one thread, not a timer each); the failure hook hears each
    failure with its count in a row, the recovery hook the first success after them."""
    failing = set(range(200))
    heard: list[tuple[Hashable, int, str]] = []
    recovered: list[Hashable] = []
    cv = threading.Condition()

    def hear(key: Hashable, n: int, exc: BaseException) -> None:
        with cv:
            heard.append((key, n, str(exc)))
            cv.notify_all()

    def recover(key: Hashable) -> None:
        with cv:
            recovered.append(key)
            cv.notify_all()

    def handler(key: Hashable) -> None:
        if key in failing:
            raise RuntimeError(f"quota exceeded for {key}")

    q = WorkQueue(
        handler,
        workers=4,
        retry_base=0.2,
        retry_max=0.4,
        on_failure=hear,
        on_recovered=recover,
    )
    threads = threading.active_count()
    for k in range(200):
        q.add(k)
    with cv:
        assert cv.wait_for(lambda: sum(1 for _, n, _ in heard if n == 2) >= 200, 10)
    assert {k for k, n, _ in heard if n == 2} == set(range(200))
    assert ("7", 1, "quota exceeded for 7") not in heard and (7, 1, "quota exceeded for 7") in heard
    assert threading.active_count() <= threads + 4 + 1  # the workers and the one retry thread
    failing.clear()  # the quota is lifted: each key's next retry succeeds
    with cv:
        assert cv.wait_for(lambda: len(set(recovered)) >= 200, 10)
    assert sorted(set(recovered)) == list(range(200)) and len(recovered) == 200
    assert q.join(5) and q.waiting_retries() == 0
    q.shutdown()


def test_an_exclusive_section_never_overlaps_a_reconcile_of_its_key() -> None:
    """The sampler's progress write runs in exclusive(): a reconcile of the same key waits for it (and one named
    meanwhile runs right after), and exclusive() waits for a running reconcile."""
    running: set[Hashable] = set()
    overlaps: list[str] = []
    done: list[str] = []
    lock = threading.Lock()

    def enter(what: str, key: Hashable) -> None:
        with lock:
            if key in running:
                overlaps.append(what)
            running.add(key)
        time.sleep(0.05)
        with lock:
            running.discard(key)
            done.append(what)

    q = WorkQueue(lambda key: enter("reconcile", key), workers=4)
    for _ in range(5):
        q.add("job")
        assert q.exclusive("job", lambda: enter("progress", "job"))
        q.add("job")
    assert q.join(5)
    assert overlaps == [] and done.count("progress") == 5 and done[-1] == "reconcile"
    gate, started = threading.Event(), threading.Event()
    q2 = WorkQueue(lambda key: (started.set(), gate.wait(5)), workers=1)
    q2.add("busy")
    assert started.wait(5)
    assert q2.exclusive("busy", lambda: None, timeout=0.1) is False  # a reconcile that does not end: gives up
    gate.set()
    assert q2.join(5)
    q.shutdown()
    q2.shutdown()
