"""Instrumentation kept out of the loop body: Prometheus gauges, tqdm, the termination summary and a loss curve."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

SUMMARY_LIMIT = 4096


def metrics_addr() -> str:
    """Where metrics servers listen: all interfaces, unless ``LABRADOR_METRICS_ADDR`` narrows it (the local node
    runner sets it to the pod's 127.0.0.x address, as its pods share the host's network)."""
    return os.environ.get("LABRADOR_METRICS_ADDR") or "0.0.0.0"


class Observer:
    """Rank 0 reports; other ranks get a no-op observer (``enabled=False``)."""

    def __init__(self, *, enabled: bool, metrics_port: int | None = None) -> None:
        self.enabled = enabled
        self.losses: list[tuple[int, float]] = []
        self._bar: Any = None
        self._gauges: dict[str, Any] = {}
        if enabled and metrics_port is not None:
            from prometheus_client import REGISTRY, Gauge, start_http_server

            names = {
                "step": "optimizer steps done in this phase",
                "total_steps": "optimizer steps of this phase",
                "epoch": "current epoch",
                "loss": "loss of the last step (per unmasked token)",
                "learning_rate": "learning rate of the last step",
                "tokens_per_second": "real (unpadded) tokens per second, all ranks",
                "eta_seconds": "estimated seconds left in this phase",
                "resumed_from_step": "the saved step this phase resumed from (NaN: started afresh)",
            }
            for k, doc in names.items():
                name = f"labrador_train_{k}"
                existing = REGISTRY._names_to_collectors.get(name)  # re-used when run twice in one process
                self._gauges[k] = existing or Gauge(name, doc)
            start_http_server(metrics_port, addr=metrics_addr())

    def phase_start(self, name: str, total_steps: int, done: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        self._bar = tqdm(total=total_steps, initial=done, desc=f"train[{name}]", dynamic_ncols=True)
        # no step of this phase yet: NaN (left out of status) rather than a 0 loss, 0 tokens/s or an ETA of 0s
        nan = math.nan
        self._set(total_steps=total_steps, step=done, resumed_from_step=done if done else nan)
        self._set(loss=nan, learning_rate=nan, tokens_per_second=nan, eta_seconds=nan)

    def step(self, *, step: int, total: int, epoch: int, loss: float, lr: float, tps: float, eta: float) -> None:
        if not self.enabled:
            return
        self.losses.append((len(self.losses), loss))
        self._set(
            step=step,
            total_steps=total,
            epoch=epoch,
            loss=loss,
            learning_rate=lr,
            tokens_per_second=tps,
            eta_seconds=eta,
        )
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tps=f"{tps:.0f}")
        print(f"step {step}/{total} epoch {epoch} loss {loss:.6f} lr {lr:.3e} tokens/s {tps:.1f}", flush=True)

    def phase_end(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _set(self, **values: float) -> None:
        for k, v in values.items():
            if k in self._gauges:
                self._gauges[k].set(v)


def write_summary(path: str | Path | None, summary: dict[str, Any]) -> None:
    """JSON summary, at most 4 KiB (Kubernetes termination messages). Written in place, not by rename: the kubelet
    bind-mounts the termination-message file into the container, and renaming onto a mount point fails (EBUSY)."""
    if path is None:
        return
    text = json.dumps(summary, separators=(",", ":"), sort_keys=True)
    if len(text) > SUMMARY_LIMIT:
        summary = {k: v for k, v in summary.items() if k != "phases"} | {"truncated": True}
        text = json.dumps(summary, separators=(",", ":"), sort_keys=True)[:SUMMARY_LIMIT]
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def loss_curve_svg(losses: list[float], path: str | Path, *, title: str = "training loss") -> None:
    """A dependency-free SVG line chart (matplotlib is not in the image)."""
    w, h, pad = 640, 360, 48
    if not losses:
        return
    lo, hi = min(losses), max(losses)
    span = (hi - lo) or 1.0
    n = max(1, len(losses) - 1)
    pts = " ".join(
        f"{pad + (w - 2 * pad) * i / n:.1f},{h - pad - (h - 2 * pad) * (v - lo) / span:.1f}"
        for i, v in enumerate(losses)
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">'
        f'<rect width="{w}" height="{h}" fill="white"/>'
        f'<text x="{w / 2}" y="24" text-anchor="middle" font-family="sans-serif" font-size="14">{title}</text>'
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>'
        f'<text x="{pad - 4}" y="{pad + 4}" text-anchor="end" font-family="sans-serif" font-size="11">{hi:.3g}</text>'
        f'<text x="{pad - 4}" y="{h - pad}" text-anchor="end" font-family="sans-serif" font-size="11">{lo:.3g}</text>'
        f'<text x="{w - pad}" y="{h - pad + 16}" text-anchor="end" font-family="sans-serif" font-size="11">'
        f"step {len(losses)}</text>"
        f'<polyline fill="none" stroke="steelblue" stroke-width="2" points="{pts}"/></svg>'
    )
    Path(path).write_text(svg)
