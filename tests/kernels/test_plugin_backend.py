"""The generic plugin backend, driven through a fake ``torch_npu`` whose ``torch.npu`` namespace
delegates to the CPU — no vendor library needed."""

from __future__ import annotations

import sys
import time
import types
from typing import Any

import pytest
import torch

from icb_bench.kernels.backends import get_backend
from icb_bench.kernels.backends.npu import NpuBackend
from icb_bench.kernels.errors import BackendUnavailable, DeviceError, OutOfMemory
from icb_bench.kernels.gemm import GemmShape, GemmWorkload


class FakeEvent:
    """Host-clock stand-in for a device event."""

    def __init__(self, enable_timing: bool = False) -> None:
        self.enable_timing = enable_timing
        self.t: float | None = None
        self.streams: list[Any] = []

    def record(self, stream: Any = None) -> None:
        self.streams.append(stream)
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        assert self.t is not None, "synchronize before record"

    def elapsed_time(self, other: "FakeEvent") -> float:
        assert self.enable_timing and other.t is not None and self.t is not None
        return (other.t - self.t) * 1e3


def make_fake_npu(devices: int = 2) -> tuple[types.ModuleType, types.SimpleNamespace]:
    """(fake torch_npu module, fake torch.npu namespace)."""
    calls: list[str] = []
    runtime = types.SimpleNamespace(
        calls=calls,
        is_available=lambda: devices > 0,
        device_count=lambda: devices,
        synchronize=lambda index=None: calls.append(f"sync{index}"),
        Event=FakeEvent,
        current_stream=lambda index=None: f"stream{index}",
        mem_get_info=lambda index=None: (30 * 2**30, 64 * 2**30),
        get_device_name=lambda index=None: "Ascend910B3",
        get_device_properties=lambda index=None: types.SimpleNamespace(
            total_memory=64 * 2**30, cube_core_num=20
        ),
        empty_cache=lambda: calls.append("empty_cache"),
    )
    module = types.ModuleType("torch_npu")
    module.__version__ = "2.13.0.fake"
    module.npu = types.SimpleNamespace(matmul=types.SimpleNamespace(allow_hf32=False))
    return module, runtime


@pytest.fixture
def fake_npu(monkeypatch) -> tuple[NpuBackend, types.ModuleType, types.SimpleNamespace]:
    module, runtime = make_fake_npu()
    monkeypatch.setitem(sys.modules, "torch_npu", module)
    monkeypatch.setattr(torch, "npu", runtime, raising=False)
    backend = get_backend("npu")
    assert isinstance(backend, NpuBackend)
    # stock torch has no "npu" device string; the fake runs its tensors on the CPU
    monkeypatch.setattr(backend, "device", lambda index: torch.device("cpu"))
    return backend, module, runtime


def test_fake_npu_inventory(fake_npu) -> None:
    backend, _, _ = fake_npu
    assert backend.device_count() == 2
    assert backend.memory_info(1) == (30 * 2**30, 64 * 2**30)
    info = backend.device_info(0)
    assert info.model == "Ascend910B3" and info.vendor == "huawei"
    assert info.extra["domestic"] is True
    assert info.compute_units == 20 and info.memory_total_bytes == 64 * 2**30
    assert info.runtime_version == "2.13.0.fake"


def test_fake_npu_events_timer(fake_npu) -> None:
    backend, _, _ = fake_npu
    timer = backend.timer(1)
    assert timer.method == "events"
    timer.start()
    time.sleep(0.01)
    timer.stop()
    assert timer.elapsed_ms() >= 9.0
    assert timer._start.streams == ["stream1"]  # recorded on the device's current stream


def test_fake_npu_gemm_end_to_end(fake_npu) -> None:
    backend, _, runtime = fake_npu
    with GemmWorkload(backend, 1, "fp32", GemmShape(128, 128, 256), seed=4) as wl:
        probe = wl.mode_probe()
        assert probe.passed
        assert probe.flags["torch_npu.npu.matmul.allow_hf32"] is False
        run = wl.run_timed(2, n_batches=3)
        assert run.method == "events"  # plugin events, eager (no graphs on plugins)
        assert len(run.batch_time_ms) == 3
        assert wl.check().valid
    assert "sync1" in runtime.calls and "empty_cache" in runtime.calls


def test_fake_npu_hf32_switch(fake_npu) -> None:
    backend, module, _ = fake_npu
    with backend.numeric_mode("tf32") as flags:
        assert module.npu.matmul.allow_hf32 is True
        assert flags["torch_npu.npu.matmul.allow_hf32"] is True
    assert module.npu.matmul.allow_hf32 is False
    module.npu.matmul.allow_hf32 = True  # someone left HF32 on: "fp32" must switch it off
    with backend.numeric_mode("fp32") as flags:
        assert flags["torch_npu.npu.matmul.allow_hf32"] is False
    assert module.npu.matmul.allow_hf32 is True


def test_fake_npu_errors_translated(fake_npu) -> None:
    backend, _, runtime = fake_npu

    def boom(index: int | None = None) -> None:
        raise RuntimeError("ACL error 507033: device lost")

    runtime.mem_get_info = boom
    with pytest.raises(DeviceError, match="507033"):
        backend.memory_info(0)

    def oom(index: int | None = None) -> None:
        raise RuntimeError("NPU out of memory. Tried to allocate 2.00 GiB")

    runtime.synchronize = oom
    with pytest.raises(OutOfMemory):
        backend.synchronize(0)


def test_plugin_no_devices(monkeypatch) -> None:
    module, runtime = make_fake_npu(devices=0)
    monkeypatch.setitem(sys.modules, "torch_npu", module)
    monkeypatch.setattr(torch, "npu", runtime, raising=False)
    assert not NpuBackend.is_available()
    with pytest.raises(BackendUnavailable, match="no usable device|no npu device"):
        get_backend("npu")


def test_plugin_import_raises_other_error(monkeypatch) -> None:
    """A plugin that blows up on import (wrong CANN, missing .so) is unavailable, not a crash."""
    import importlib

    real_import = importlib.import_module

    def fake_import(name: str, *args: Any) -> Any:
        if name == "torch_npu":
            raise OSError("libascendcl.so: cannot open shared object file")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    reason = NpuBackend.unavailable_reason()
    assert reason is not None and "libascendcl" in reason
    assert not NpuBackend.is_available()
