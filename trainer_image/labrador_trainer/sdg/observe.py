"""Generation progress: tqdm on stderr and the Prometheus gauges the operator scrapes into status.progress.

Progress is measured in *work units*: each teacher request weighs its stage's output-token budget plus a fixed
prompt share (``Runner`` plans the units of every stage still to run and revises the plan when a stage's real output
count is known). Units finish as requests finish, so the fraction and the ETA move within a stage, judges included
(a samples count moves only in the stage that generates). The ETA is NaN — absent from status — until this run has
finished a request to take a rate from."""

from __future__ import annotations

import math
import time
from typing import Any

from labrador_trainer.train.observe import metrics_addr

GAUGES = {
    "samples_generated": "samples the teacher produced so far (this shard, including earlier runs)",
    "samples_target": "samples this shard aims for",
    "output_tokens_per_second": "teacher output tokens per second in this run",
    "eta_seconds": "estimated seconds left for this shard (NaN until there is a rate)",
    "work_fraction": "estimated share of this shard's teacher work done (0..1), earlier runs included",
}


class Observer:
    def __init__(self, metrics_port: int | None = None, *, progress: bool = True) -> None:
        self.output_tokens = 0
        self.requests_total = 0
        self.requests_done = 0
        self.generated = 0
        self.target = 0
        self.units_total = 0.0
        self.units_credited = 0.0  # done by earlier runs (resumed): counts in the fraction, not in the rate
        self.units_done = 0.0  # done by this run
        self._t0 = time.monotonic()
        self._t_work: float | None = None  # when this run sent its first request (the engine load is not work)
        self._stage: str | None = None
        self._bar: Any = None
        self._progress = progress
        self._g: dict[str, Any] = {}
        self._stage_gauge: Any = None
        if metrics_port is not None:
            from prometheus_client import REGISTRY, Gauge, start_http_server

            def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
                existing = REGISTRY._names_to_collectors.get(name)  # re-used when run twice in one process
                return existing or Gauge(name, doc, labels)

            self._g = {k: gauge(f"labrador_sdg_{k}", doc) for k, doc in GAUGES.items()}
            self._stage_gauge = gauge("labrador_sdg_stage_info", "current stage (value 1)", ("stage",))
            self._set("eta_seconds", math.nan)
            start_http_server(metrics_port, addr=metrics_addr())

    def _set(self, name: str, value: float) -> None:
        if name in self._g:
            self._g[name].set(value)

    def set_target(self, n: int) -> None:
        self.target = n
        self._set("samples_target", n)

    def add_generated(self, n: int) -> None:
        self.generated += n
        self._set("samples_generated", self.generated)

    def set_stage(self, stage: str) -> None:
        if self._stage_gauge is not None:
            if self._stage is not None:
                self._stage_gauge.labels(stage=self._stage).set(0)
            self._stage_gauge.labels(stage=stage).set(1)
        self._stage = stage

    def plan_units(self, total: float) -> None:
        """The run's estimated work in all (done, credited and still to do); revised as stages finish."""
        self.units_total = max(total, self.units_credited + self.units_done)
        self._publish()

    def credit_units(self, units: float) -> None:
        """Work an earlier run already did (finished stages, partial results kept on disk)."""
        self.units_credited += units
        self._publish()

    def fraction(self) -> float:
        if self.units_total <= 0:
            return 0.0
        return min(1.0, (self.units_credited + self.units_done) / self.units_total)

    def eta(self) -> float | None:
        """Seconds left at this run's rate; None until a request has finished."""
        if self._t_work is None or self.units_done <= 0:
            return None
        rate = self.units_done / max(time.monotonic() - self._t_work, 1e-6)
        return max(0.0, self.units_total - self.units_credited - self.units_done) / rate

    def _publish(self) -> None:
        self._set("work_fraction", self.fraction())
        eta = self.eta()
        self._set("eta_seconds", math.nan if eta is None else eta)

    def add_requests(self, n: int, *, round_: int) -> None:
        if n and self._t_work is None:
            self._t_work = time.monotonic()
        self.requests_total += n
        if self._progress:
            from tqdm import tqdm

            if self._bar is not None:
                self._bar.close()
            self._bar = tqdm(total=n, desc=f"sdg[{round_}:{self._stage}]", dynamic_ncols=True)

    def request_done(self, tokens: int, units: float = 0.0) -> None:
        self.requests_done += 1
        self.output_tokens += tokens
        self.units_done += units
        start = self._t_work if self._t_work is not None else self._t0
        self._set("output_tokens_per_second", self.output_tokens / max(time.monotonic() - start, 1e-6))
        self._publish()
        if self._bar is not None:
            self._bar.update(1)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.units_total = max(self.units_total, self.units_credited + self.units_done)
        self.units_done = self.units_total - self.units_credited
        self._set("work_fraction", 1.0)
        self._set("eta_seconds", 0)
        self.set_stage("done")
