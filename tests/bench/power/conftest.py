"""Fixtures for the power tests: a fake ``pynvml`` installed at its import site."""

from __future__ import annotations

import sys
import types
from typing import Any, Callable, Iterator

import pytest
from power_fakes import FakeGpu, make_fake_pynvml

from icb_bench.bench.power import nvml as nvml_mod


@pytest.fixture
def gpus() -> list[FakeGpu]:
    return [
        FakeGpu(uuid="GPU-aaaaaaaa-0000-0000-0000-000000000000", pci_bus_id="00000000:1B:00.0"),
        FakeGpu(uuid="GPU-bbbbbbbb-0000-0000-0000-000000000000", pci_bus_id="00000000:3B:00.0", counter_power_w=450.0),
    ]


@pytest.fixture
def install_pynvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., types.ModuleType]]:
    """Install a fake pynvml into sys.modules (removed after the test); checks NVML refs balance."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert nvml_mod.nvml_refcount() == 0

    def install(gpus: list[FakeGpu], **kw: Any) -> types.ModuleType:
        m = make_fake_pynvml(gpus, **kw)
        monkeypatch.setitem(sys.modules, "pynvml", m)
        return m

    yield install
    assert nvml_mod.nvml_refcount() == 0, "a test left an NVML reader open"


