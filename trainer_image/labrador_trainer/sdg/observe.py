"""Generation progress: tqdm on stderr and the Prometheus gauges the operator scrapes into status.progress."""

from __future__ import annotations

import time
from typing import Any

from labrador_trainer.train.observe import metrics_addr

GAUGES = {
    "samples_generated": "samples the teacher produced so far (this shard, including earlier runs)",
    "samples_target": "samples this shard aims for",
    "output_tokens_per_second": "teacher output tokens per second in this run",
    "eta_seconds": "estimated seconds left for this shard",
}


class Observer:
    def __init__(self, metrics_port: int | None = None, *, progress: bool = True) -> None:
        self.output_tokens = 0
        self.requests_total = 0
        self.requests_done = 0
        self.generated = 0
        self.target = 0
        self._t0 = time.monotonic()
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

    def add_requests(self, n: int, *, round_: int) -> None:
        self.requests_total += n
        if self._progress:
            from tqdm import tqdm

            if self._bar is not None:
                self._bar.close()
            self._bar = tqdm(total=n, desc=f"sdg[{round_}:{self._stage}]", dynamic_ncols=True)

    def request_done(self, tokens: int) -> None:
        self.requests_done += 1
        self.output_tokens += tokens
        elapsed = max(time.monotonic() - self._t0, 1e-6)
        self._set("output_tokens_per_second", self.output_tokens / elapsed)
        rate = self.requests_done / elapsed
        # requests still to come in this round; later rounds are about as many again per remaining stage
        self._set("eta_seconds", (self.requests_total - self.requests_done) / rate if rate else 0)
        if self._bar is not None:
            self._bar.update(1)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._set("eta_seconds", 0)
        self.set_stage("done")
