"""The operator's one background sampler (controller/sampler.py): only running jobs, scrapes spread over the
interval and rate-limited, one failing scrape never stops the round, kopf's peering rule. Each test builds a runtime
and a sampler of its own; the tests wait on what the sampler does, never for a fixed time."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest

from labrador_operator.controller import sampler
from labrador_operator.controller.cache import Cache
from tests.unit.conftest import runtime_for

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


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
def test_paused_by_peers_follows_kopfs_rule(peers: dict[str, Any], paused: bool) -> None:
    assert sampler.paused_by_peers(peers, 10, NOW) is paused


def _obj(name: str, phase: str | None, plural_ns: str = "ns") -> dict[str, Any]:
    return {"metadata": {"namespace": plural_ns, "name": name}, "spec": {}, "status": {"phase": phase} if phase else {}}


class Recorder:
    """Records each sample; ``wait(pred)`` returns once the calls so far satisfy ``pred`` (or fails after 10 s)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []
        self.cv = threading.Condition()

    def __call__(self, rt: Any, obj: dict[str, Any]) -> None:
        with self.cv:
            self.calls.append((time.monotonic(), obj["metadata"]["name"]))
            self.cv.notify_all()

    def wait(self, pred: Any, timeout: float = 10.0) -> None:
        with self.cv:
            assert self.cv.wait_for(lambda: pred([n for _, n in self.calls]), timeout), self.calls


def _sampler(jobs: list[dict[str, Any]], rec: Recorder, sample: Any = None, **settings: Any) -> sampler.Sampler:
    cache = Cache()
    for j in jobs:
        cache.observe_parent("finetunejobs", None, j)
    ks = kopf.OperatorSettings()
    ks.peering.standalone = True
    progress = (("finetunejobs", "Running", sample or rec),)
    return sampler.Sampler(runtime_for(cache=cache, **settings), ks, progress)


def test_only_running_jobs_are_sampled_by_their_latest_written_phase() -> None:
    jobs = [_obj("run", "Running"), _obj("pending", "Pending"), _obj("new", None), _obj("ended", "Running")]
    s = _sampler(jobs, Recorder())
    s.rt.overlay.wrote("finetunejobs", "ns", "ended", {"phase": "Succeeded"})  # the cache's entry lags behind
    assert [obj["metadata"]["name"] for _, obj in s.running()] == ["run"]


def test_scrapes_are_spread_and_rate_limited() -> None:
    """40 running jobs, a 1 s interval but at most 10 scrapes/s: a round takes ~4 s, never a burst."""
    jobs = [_obj(f"j{i:02d}", "Running") for i in range(40)]
    rec = Recorder()
    s = _sampler(jobs, rec, progress_interval_seconds=1.0, progress_max_per_second=10.0)
    s.start()
    try:
        rec.wait(lambda names: len(names) >= 12)
    finally:
        s.close()
    times = [t for t, _ in rec.calls]
    assert len({n for _, n in rec.calls}) == len(rec.calls)  # no job twice within one round
    # paced 0.1 s apart, not submitted in one go: 12 scrapes take at least 1.1 s (a loaded host may run one a
    # little late, so the bounds leave it that)
    assert times[11] - times[0] > 0.9, times
    assert max(sum(1 for t in times if t0 <= t < t0 + 1.0) for t0 in times) <= 12


def test_a_failing_scrape_does_not_stop_the_round() -> None:
    jobs = [_obj(f"j{i}", "Running") for i in range(4)]
    rec = Recorder()

    def flaky(rt: Any, obj: dict[str, Any]) -> None:
        rec(rt, obj)
        if obj["metadata"]["name"] == "j1":
            raise RuntimeError("pod went away")

    s = _sampler(jobs, rec, flaky, progress_interval_seconds=0.4)
    s.start()
    try:  # a second round came, with every job in it
        rec.wait(lambda names: names.count("j3") >= 2 and names.count("j1") >= 2)
    finally:
        s.close()
