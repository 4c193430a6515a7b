"""What this host computes fast, and the dtype ``auto`` resolves to on it.

On a CPU without native bf16 (no AVX512_BF16, no AMX — e.g. AMD Zen 1/2, Intel before Cooper Lake) torch and vLLM
*emulate* bf16: measured on an AVX2-only EPYC, a bf16 matrix product ran at 1.0 GFLOP/s against 31.5 in fp32, and the
demo's teacher sat at 0 % for 13 minutes. So on CPU ``auto`` means bf16 only where the CPU has it natively:

- inference (the vLLM teacher and judge): ``bfloat16`` with native bf16, else ``float32``; on GPU vLLM's own
  ``auto`` (the model's dtype);
- training and evaluation losses: ``bfloat16`` on CUDA; ``float32`` on every CPU (fp32 losses are the reference the
  tests and the base-vs-tuned comparison are made in; on this project's AMX host bf16 autocast trained a 4-layer
  SmolLM2 only 1.35× faster, on an AVX2 host it is ~30× slower).

An explicit dtype is honoured as given (with a warning when it is bf16 on a CPU that emulates it).
``LABRADOR_CPU_BF16=off`` makes a host with native bf16 behave as one without (the fp32 path of a slow host, on any
host); ``auto`` (the default) detects it.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any

log = logging.getLogger(__name__)

ENV = "LABRADOR_CPU_BF16"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.cache
def detected_native_bf16() -> bool:
    """The CPU multiplies bf16 in hardware (AVX512_BF16 or AMX), as torch's own dispatch sees it."""
    try:
        import torch

        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (ImportError, AttributeError):  # no torch here (the operator's image) or an older torch
        flags = _cpu_flags()
        return bool({"avx512_bf16", "amx_bf16"} & flags)


def forced_off() -> bool:
    value = os.environ.get(ENV, "auto").strip().lower()
    if value in ("off", "0", "false", "no"):
        return True
    if value not in ("auto", "", "on", "1", "true", "yes"):
        log.warning("%s=%r not understood (auto or off): detecting", ENV, value)
    return False


def cpu_native_bf16() -> bool:
    """Native bf16 on this CPU, unless ``LABRADOR_CPU_BF16=off`` says to act as a host without it."""
    return detected_native_bf16() and not forced_off()


def cpu_capability() -> str:
    """torch's CPU kernel level (``AVX2``, ``AVX512``, ``DEFAULT``…), or ``unknown`` without torch."""
    try:
        import torch

        return str(torch.backends.cpu.get_cpu_capability())
    except (ImportError, AttributeError):
        return "unknown"


def inference_dtype(requested: str, *, cpu: bool) -> str:
    """The dtype to hand vLLM for ``requested`` (``auto`` resolved on CPU; on GPU vLLM's own ``auto`` stays)."""
    if requested != "auto":
        if cpu and requested == "bfloat16" and not cpu_native_bf16():
            log.warning("dtype bfloat16 asked for on a CPU without native bf16 (%s): it is emulated, ~30x slower",
                        cpu_capability())  # fmt: skip
        return requested
    if not cpu:
        return "auto"
    return "bfloat16" if cpu_native_bf16() else "float32"


def compute_dtype(requested: str, *, cuda: bool) -> str:
    """Training/evaluation precision for ``requested``: ``auto`` is bf16 on CUDA and fp32 on every CPU."""
    if requested != "auto":
        if not cuda and requested in ("bfloat16", "float16") and not cpu_native_bf16():
            log.warning("training dtype %s on a CPU without native bf16 (%s): emulated, far slower than float32",
                        requested, cpu_capability())  # fmt: skip
        return requested
    return "bfloat16" if cuda else "float32"


def gemm_gflops(dtype: str, *, n: int = 20) -> float:
    """One thread's matrix product rate (256×576 @ 576×1536, SmolLM2's MLP shape) in ``dtype``: the number that says
    whether bf16 is native here (≈3× fp32 with AMX, ≈1/30 of it where emulated)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dt = getattr(torch, dtype)
        a, b = torch.randn(256, 576).to(dt), torch.randn(576, 1536).to(dt)
        a @ b
        reps, t0 = 0, time.perf_counter()
        while reps < n and (reps < 2 or time.perf_counter() - t0 < 2.0):  # at most ~2 s where it is slow
            a @ b
            reps += 1
        return 2 * 256 * 576 * 1536 * reps / (time.perf_counter() - t0) / 1e9
    finally:
        torch.set_num_threads(threads)


def host_info(*, gemm: bool = False) -> dict[str, Any]:
    """What a figure was measured on: CPU model, torch's capability, native bf16 (detected / in effect)."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": model or "unknown",
        "cores": os.cpu_count(),
        "capability": cpu_capability(),
        "native_bf16": detected_native_bf16(),
        "bf16_in_use": cpu_native_bf16(),
    }
    if gemm:
        info["fp32_gflops"] = round(gemm_gflops("float32"), 1)
        info["bf16_gflops"] = round(gemm_gflops("bfloat16"), 1)
    return info


def host_line(*, gemm: bool = True) -> str:
    """One line for benchmark output, so figures from different hosts are never compared blind."""
    i = host_info(gemm=gemm)
    line = (f"host: {i['cpu']} ({i['cores']} cores), torch capability {i['capability']}, "
            f"native bf16 {'yes' if i['native_bf16'] else 'no'}")  # fmt: skip
    if i["native_bf16"] and not i["bf16_in_use"]:
        line += f" (off: {ENV}=off)"
    if gemm:
        line += f", GEMM 1 thread fp32 {i['fp32_gflops']} / bf16 {i['bf16_gflops']} GFLOP/s"
    return line
