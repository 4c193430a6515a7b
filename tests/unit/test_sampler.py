"""The operator's one background sampler and the kopf settings that depend on which handlers exist."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest

import labrador_operator.handlers  # noqa: F401  (registers every handler)
from labrador_operator.handlers import apply, sampler
from labrador_operator.handlers.cache import Cache
from labrador_operator.handlers.startup import NoDiffBase
from labrador_operator.settings import Settings

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def test_no_handler_needs_kopf_diffs_or_finalizers() -> None:
    """NoDiffBase is only right while nothing detects changes; timers/daemons would also put a finalizer on every
    job (2 writes each) — the sampler replaces them."""
    registry = kopf.get_default_registry()
    assert list(registry._changing.get_all_handlers()) == []
    assert list(registry._spawning.get_all_handlers()) == []
    storage = NoDiffBase()
    assert storage.build(body={"metadata": {}}) == {} and storage.fetch(body={"metadata": {}}) == {}


def test_startup_configures_before_the_sampler_starts() -> None:
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
def test_paused_by_peers_follows_kopfs_rule(peers: dict[str, Any], paused: bool) -> None:
    assert sampler.paused_by_peers(peers, 10, NOW) is paused


def _obj(name: str, phase: str | None, plural_ns: str = "ns") -> dict[str, Any]:
    return {"metadata": {"namespace": plural_ns, "name": name}, "spec": {}, "status": {"phase": phase} if phase else {}}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    def __call__(self, obj: dict[str, Any]) -> None:
        with self.lock:
            self.calls.append((time.monotonic(), obj["metadata"]["name"]))


def _sampler(
    monkeypatch: pytest.MonkeyPatch, jobs: list[dict[str, Any]], **settings: Any
) -> tuple[sampler.Sampler, Recorder]:
    rec = Recorder()
    monkeypatch.setattr(sampler, "PROGRESS", (("finetunejobs", "Running", rec),))
    cache = Cache()
    for j in jobs:
        cache.observe_parent("finetunejobs", None, j)
    ks = kopf.OperatorSettings()
    ks.peering.standalone = True
    return sampler.Sampler(cache, Settings(**settings), ks), rec


def test_only_running_jobs_are_sampled_by_their_latest_written_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = [_obj("run", "Running"), _obj("pending", "Pending"), _obj("new", None), _obj("ended", "Running")]
    s, _ = _sampler(monkeypatch, jobs)
    with apply._written_lock:  # this process already wrote Succeeded; the index entry lags behind
        apply._written[("finetunejobs", "ns", "ended")] = {"phase": "Succeeded"}
    try:
        assert [obj["metadata"]["name"] for _, obj in s.running()] == ["run"]
    finally:
        apply.forget("finetunejobs", "ns", "ended")


def test_scrapes_are_spread_and_rate_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    """40 running jobs, a 1 s interval but at most 10 scrapes/s: a round takes ~4 s, never a burst."""
    jobs = [_obj(f"j{i:02d}", "Running") for i in range(40)]
    s, rec = _sampler(monkeypatch, jobs, progress_interval_seconds=1.0, progress_max_per_second=10.0)
    s.start()
    time.sleep(2.0)
    s.close()
    times = [t for t, _ in rec.calls]
    assert 10 <= len(times) <= 22, len(times)  # ~10/s for 2 s
    assert len({n for _, n in rec.calls}) == len(rec.calls)  # no job twice within one round
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) > 0.05  # paced (0.1 s apart), not submitted in one go


def test_a_failing_scrape_does_not_stop_the_round(monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = [_obj(f"j{i}", "Running") for i in range(4)]
    s, rec = _sampler(monkeypatch, jobs, progress_interval_seconds=0.4)

    def flaky(obj: dict[str, Any]) -> None:
        rec(obj)
        if obj["metadata"]["name"] == "j1":
            raise RuntimeError("pod went away")

    monkeypatch.setattr(sampler, "PROGRESS", (("finetunejobs", "Running", flaky),))
    s.start()
    time.sleep(1.0)
    s.close()
    names = [n for _, n in rec.calls]
    assert names.count("j3") >= 2 and names.count("j1") >= 2
