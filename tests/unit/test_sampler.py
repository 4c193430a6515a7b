"""The operator's one background sampler and the kopf settings that depend on which handlers exist.

The handler modules are imported inside the tests, not at collection: importing ``labrador_operator.handlers``
registers its handlers and reads the environment once per process, and `pytest tests` runs the integration tier
(whose operator fixture sets that environment first) in the same process.
"""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest

from labrador_operator.cache import Cache
from labrador_operator.settings import Settings

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def handlers() -> Any:
    import labrador_operator.handlers as package
    from labrador_operator.handlers import apply, sampler, startup

    return type("H", (), {"package": package, "apply": apply, "sampler": sampler, "startup": startup})


def test_no_handler_needs_kopf_diffs_or_finalizers(handlers: Any) -> None:
    """NoDiffBase is only right while nothing detects changes; timers/daemons would also put a finalizer on every
    job (2 writes each) — the sampler replaces them."""
    registry = kopf.get_default_registry()
    assert list(registry._changing.get_all_handlers()) == []
    assert list(registry._spawning.get_all_handlers()) == []
    storage = handlers.startup.NoDiffBase()
    assert storage.build(body={"metadata": {}}) == {} and storage.fetch(body={"metadata": {}}) == {}


def test_watch_handlers_only_name_work_and_kopf_keeps_no_record_per_object(handlers: Any) -> None:
    """Watch handlers are async (kopf frees an event's body when its handler returns, never waiting for a thread);
    reconciles run in the work queue. No kopf indexes, so kopf's per-object records can be transient."""
    import asyncio
    import inspect

    registry = kopf.get_default_registry()
    watching = list(registry._watching.get_all_handlers())
    assert watching and all(inspect.iscoroutinefunction(h.fn) for h in watching), [h.id for h in watching]
    assert list(registry._indexing.get_all_handlers()) == []
    memories = handlers.startup.TransientMemories()
    body = {"metadata": {"uid": "u1", "name": "a", "namespace": "n"}}
    first = asyncio.run(memories.recall(body))
    second = asyncio.run(memories.recall(body))
    assert first is not second and list(memories.iter_all_memories()) == []


def test_startup_configures_before_the_sampler_starts(handlers: Any) -> None:
    ids = [h.id for h in kopf.get_default_registry()._activities.get_all_handlers()]
    assert ids.index("configure") < ids.index("start_sampler")


def _peer(priority: int, seen_ago: float, lifetime: int = 60) -> dict[str, Any]:
    seen = (NOW - timedelta(seconds=seen_ago)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen}


@pytest.mark.parametrize(
    ("peers", "paused"),
    [
        ({"me": _peer(10, 1)}, False),
        ({"me": _peer(10, 1), "other": _peer(5, 1)}, False),
        ({"me": _peer(10, 1), "other": _peer(20, 1)}, True),
        ({"me": _peer(10, 1), "other": {**_peer(20, 1), "lastseen": (NOW - timedelta(seconds=1)).isoformat()}}, True),
        ({"me": _peer(10, 1), "other": _peer(20, 600)}, False),  # the higher one is dead (lifetime 60 s)
        ({"me": _peer(10, 1), "other": _peer(10, 1)}, True),  # same priority: kopf pauses both
        ({"me": _peer(10, 1), "junk": "x", "bad": {"priority": 99}}, False),
    ],
)
def test_paused_by_peers_follows_kopfs_rule(handlers: Any, peers: dict[str, Any], paused: bool) -> None:
    assert handlers.sampler.paused_by_peers(peers, 10, NOW) is paused


def _obj(name: str, phase: str | None, plural_ns: str = "ns") -> dict[str, Any]:
    return {"metadata": {"namespace": plural_ns, "name": name}, "spec": {}, "status": {"phase": phase} if phase else {}}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    def __call__(self, obj: dict[str, Any]) -> None:
        with self.lock:
            self.calls.append((time.monotonic(), obj["metadata"]["name"]))


def _sampler(jobs: list[dict[str, Any]], rec: Recorder, sample: Any = None, **settings: Any) -> Any:
    """A sampler of its own (the integration tier's operator may be running one in this process)."""
    from labrador_operator.handlers import sampler

    cache = Cache()
    for j in jobs:
        cache.observe_parent("finetunejobs", None, j)
    ks = kopf.OperatorSettings()
    ks.peering.standalone = True
    progress = (("finetunejobs", "Running", sample or rec),)
    return sampler.Sampler(cache, Settings(**settings), ks, progress)


def test_only_running_jobs_are_sampled_by_their_latest_written_phase(handlers: Any) -> None:
    apply = handlers.apply
    jobs = [_obj("run", "Running"), _obj("pending", "Pending"), _obj("new", None), _obj("ended", "Running")]
    s = _sampler(jobs, Recorder())
    with apply._written_lock:  # this process already wrote Succeeded; the index entry lags behind
        apply._written[("finetunejobs", "ns", "ended")] = {"phase": "Succeeded"}
    try:
        assert [obj["metadata"]["name"] for _, obj in s.running()] == ["run"]
    finally:
        apply.forget("finetunejobs", "ns", "ended")


def test_scrapes_are_spread_and_rate_limited() -> None:
    """40 running jobs, a 1 s interval but at most 10 scrapes/s: a round takes ~4 s, never a burst."""
    jobs = [_obj(f"j{i:02d}", "Running") for i in range(40)]
    rec = Recorder()
    s = _sampler(jobs, rec, progress_interval_seconds=1.0, progress_max_per_second=10.0)
    s.start()
    time.sleep(2.0)
    s.close()
    times = [t for t, _ in rec.calls]
    assert len(times) >= 5, len(times)
    assert len({n for _, n in rec.calls}) == len(rec.calls)  # no job twice within one round
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) > 0.05  # paced (0.1 s apart), not submitted in one go
    assert max(sum(1 for t in times if t0 <= t < t0 + 1.0) for t0 in times) <= 11  # never over 10/s


def test_a_failing_scrape_does_not_stop_the_round() -> None:
    jobs = [_obj(f"j{i}", "Running") for i in range(4)]
    rec = Recorder()

    def flaky(obj: dict[str, Any]) -> None:
        rec(obj)
        if obj["metadata"]["name"] == "j1":
            raise RuntimeError("pod went away")

    s = _sampler(jobs, rec, flaky, progress_interval_seconds=0.4)
    s.start()
    time.sleep(1.0)
    s.close()
    names = [n for _, n in rec.calls]
    assert names.count("j3") >= 2 and names.count("j1") >= 2


def test_written_status_is_forgotten_once_an_event_shows_it(handlers: Any) -> None:
    apply = handlers.apply
    key = ("finetunejobs", "a", "done")
    with apply._written_lock:
        apply._written[key] = {"phase": "Succeeded", "completionTime": "t1"}
    try:
        apply.settled("finetunejobs", _obj("done", "Running", "a"))  # predates our write: the overlay stays
        lagging = _obj("done", "Succeeded", "a")  # the phase, but not yet our completionTime
        apply.settled("finetunejobs", lagging)
        assert key in apply._written
        caught_up = _obj("done", "Succeeded", "a")
        caught_up["status"]["completionTime"] = "t1"
        apply.settled("finetunejobs", caught_up)
        assert key not in apply._written
        assert apply.current_status("finetunejobs", caught_up) == caught_up["status"]
        with apply._written_lock:
            apply._written[key] = {"phase": "Running"}
        apply.settled("finetunejobs", _obj("done", "Running", "a"))  # a live object too
        assert key not in apply._written
    finally:
        apply.forget(*key)
