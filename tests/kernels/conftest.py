"""Shared fixtures for the kernels tests (CPU unless a test module says otherwise)."""

from __future__ import annotations

import pytest

from icb_bench.kernels.backends.cpu import CPU_DEVICES_ENV, CpuBackend


@pytest.fixture
def cpu(monkeypatch: pytest.MonkeyPatch) -> CpuBackend:
    """The CPU backend presenting a single logical device."""
    monkeypatch.delenv(CPU_DEVICES_ENV, raising=False)
    return CpuBackend()
