"""`auto` dtypes follow the host: bf16 on a CPU only where it is native, the LABRADOR_CPU_BF16=off switch, and the
host line every benchmark prints."""

from __future__ import annotations

import re

import pytest

from labrador_trainer import hardware

pytestmark = pytest.mark.workloads


@pytest.fixture
def native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "detected_native_bf16", lambda: True)
    monkeypatch.delenv(hardware.ENV, raising=False)


@pytest.fixture
def emulated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "detected_native_bf16", lambda: False)
    monkeypatch.delenv(hardware.ENV, raising=False)


def test_detection_agrees_with_the_cpu_flags() -> None:
    flags = hardware._cpu_flags()
    assert flags, "no /proc/cpuinfo flags"
    assert hardware.detected_native_bf16() == bool({"avx512_bf16", "amx_bf16"} & flags)


@pytest.mark.usefixtures("native")
def test_native_bf16_host(monkeypatch: pytest.MonkeyPatch) -> None:
    assert hardware.inference_dtype("auto", cpu=True) == "bfloat16"
    assert hardware.inference_dtype("auto", cpu=False) == "auto"  # vLLM's own choice on a GPU
    assert hardware.compute_dtype("auto", cuda=False) == "float32"  # losses in fp32 on every CPU
    assert hardware.compute_dtype("auto", cuda=True) == "bfloat16"
    # the switch: behave as a host without native bf16
    monkeypatch.setenv(hardware.ENV, "off")
    assert hardware.inference_dtype("auto", cpu=True) == "float32"
    assert not hardware.cpu_native_bf16()


@pytest.mark.usefixtures("emulated")
def test_emulated_bf16_host(caplog: pytest.LogCaptureFixture) -> None:
    assert hardware.inference_dtype("auto", cpu=True) == "float32"
    assert hardware.compute_dtype("auto", cuda=False) == "float32"
    # an explicit dtype is honoured as given, with a warning where it is emulated
    with caplog.at_level("WARNING"):
        assert hardware.inference_dtype("bfloat16", cpu=True) == "bfloat16"
        assert hardware.compute_dtype("bfloat16", cuda=False) == "bfloat16"
    assert sum("emulated" in r.getMessage() for r in caplog.records) == 2
    assert hardware.inference_dtype("float16", cpu=False) == "float16"


def test_the_host_line_names_capability_and_gemm_rates() -> None:
    line = hardware.host_line()
    assert f"torch capability {hardware.cpu_capability()}" in line
    m = re.search(r"fp32 ([\d.]+) / bf16 ([\d.]+) GFLOP/s", line)
    assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0
    info = hardware.host_info(gemm=True)
    if info["native_bf16"]:  # native: bf16 at least as fast as fp32 (AMX here: ~3x); emulated: ~1/30
        assert info["bf16_gflops"] > 0.8 * info["fp32_gflops"], info
