"""The host CPU as torch presents it; ``ICB_BENCH_CPU_DEVICES`` splits it into logical devices.

Logical devices let the orchestration (one process per device) be exercised without an
accelerator: each worker process gets ``threads // count`` torch threads via
:meth:`CpuBackend.configure_worker`.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from ..errors import BackendUnavailable
from .base import DOMESTIC_VENDORS, Backend, DeviceInfo, Timer

#: environment variable naming how many logical CPU devices to present
CPU_DEVICES_ENV = "ICB_BENCH_CPU_DEVICES"

#: /proc/cpuinfo ``vendor_id`` -> vendor key (whether a vendor is domestic is decided in one place:
#: ``base.DOMESTIC_VENDORS``, through ``DeviceInfo.domestic``)
X86_VENDORS: dict[str, str] = {
    "GenuineIntel": "intel",
    "AuthenticAMD": "amd",
    "HygonGenuine": "hygon",
    "CentaurHauls": "zhaoxin",
    "Shanghai": "zhaoxin",  # "  Shanghai  " with the padding stripped
}

#: /proc/cpuinfo ``CPU implementer`` (Arm) -> vendor key
ARM_IMPLEMENTERS: dict[str, str] = {
    "0x48": "huawei",  # HiSilicon Kunpeng
    "0x70": "phytium",
    "0x41": "arm",
    "0xc0": "ampere",
}


class PerfCounterTimer(Timer):
    """Host clock around work that the CPU runs synchronously."""

    method = "wall"

    def __init__(self) -> None:
        self._start_s: float | None = None
        self._stop_s: float | None = None

    def start(self) -> None:
        self._start_s = time.perf_counter()

    def stop(self) -> None:
        self._stop_s = time.perf_counter()

    def elapsed_ms(self) -> float:
        if self._start_s is None or self._stop_s is None:
            raise RuntimeError("timer read before start() and stop()")
        return (self._stop_s - self._start_s) * 1e3


def _read_cpuinfo(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's ``key: value`` fields (empty off Linux)."""
    fields: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    if fields:
                        break  # one processor block is enough
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _read_meminfo(path: str = "/proc/meminfo") -> tuple[int, int] | None:
    """(available_bytes, total_bytes) from /proc/meminfo, or None off Linux."""
    values: dict[str, int] = {}
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    values[key] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    except OSError:
        return None
    if "MemTotal" not in values:
        return None
    return values.get("MemAvailable", values.get("MemFree", 0)), values["MemTotal"]


def host_threads() -> int:
    """Hardware threads this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_vendor_model(cpuinfo: dict[str, str]) -> tuple[str, bool, str]:
    """(vendor, domestic, model) from /proc/cpuinfo fields."""
    model = cpuinfo.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    vendor_id = cpuinfo.get("vendor_id")
    if vendor_id is not None:
        vendor = X86_VENDORS.get(vendor_id, vendor_id.strip().lower() or "unknown")
        domestic = vendor in DOMESTIC_VENDORS
        return vendor, domestic, model
    implementer = cpuinfo.get("CPU implementer", "").lower()
    if implementer:
        vendor = ARM_IMPLEMENTERS.get(implementer, f"arm-implementer-{implementer}")
        domestic = vendor in DOMESTIC_VENDORS
        if "model name" not in cpuinfo:
            model = f"{vendor} Arm CPU (implementer {implementer}, part {cpuinfo.get('CPU part', '?')})"
        return vendor, domestic, model
    return "unknown", False, model


class CpuBackend(Backend):
    """torch on the host CPU; timing with ``time.perf_counter`` (CPU matmuls are synchronous)."""

    name = "cpu"
    prefers_small_shapes = True
    device_type = "cpu"
    supports_graphs = False

    @classmethod
    def is_available(cls) -> bool:
        return True

    def device_count(self) -> int:
        raw = os.environ.get(CPU_DEVICES_ENV, "1")
        try:
            count = int(raw)
        except ValueError:
            raise BackendUnavailable(f"${CPU_DEVICES_ENV}={raw!r} is not an integer") from None
        if count < 1:
            raise BackendUnavailable(f"${CPU_DEVICES_ENV}={raw!r} must be at least 1")
        return count

    def device(self, index: int) -> Any:
        import torch

        self._check_index(index)
        return torch.device("cpu")

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.device_count():
            raise IndexError(f"cpu device {index} out of range (0..{self.device_count() - 1})")

    def synchronize(self, index: int) -> None:
        """Nothing to wait for: CPU kernels return when done."""

    def timer(self, index: int) -> Timer:
        return PerfCounterTimer()

    def configure_worker(self, index: int, count: int) -> None:
        """Give each of ``count`` worker processes an equal share of the host's threads."""
        import torch

        torch.set_num_threads(max(1, host_threads() // max(1, count)))

    def memory_info(self, index: int) -> tuple[int, int]:
        """(free, total) host memory, divided evenly among the logical devices."""
        mem = _read_meminfo()
        if mem is None:
            page = os.sysconf("SC_PAGE_SIZE")
            mem = (os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page)
        count = self.device_count()
        return mem[0] // count, mem[1] // count

    def device_info(self, index: int) -> DeviceInfo:
        import torch

        self._check_index(index)
        info = _read_cpuinfo()
        vendor, _domestic, model = cpu_vendor_model(info)
        count = self.device_count()
        threads = host_threads()
        return DeviceInfo(
            index=index,
            backend=self.name,
            model=model,
            vendor=vendor,
            memory_total_bytes=self.memory_info(index)[1],
            runtime_version=torch.__version__,
            compute_units=max(1, threads // count),
            extra={  # no "domestic" of its own: DeviceInfo.domestic decides from the vendor
                "host_threads": threads,
                "logical_devices": count,
                "torch_threads": torch.get_num_threads(),
            },
        )
