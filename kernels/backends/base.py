"""The one interface every device family implements.

Modelled on Zeus's `zeus/device/`: an abstract device family, one module per vendor, vendor
errors translated into :mod:`icb_bench.kernels.errors` at the boundary.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass(frozen=True)
class DeviceInfo:
    """What a backend can say about one device, for the inventory and provenance."""

    index: int
    backend: str
    model: str
    vendor: str  # "nvidia", "amd", "hygon", "huawei", "cambricon", "moorethreads", "cpu", …
    memory_total_bytes: int | None = None
    uuid: str | None = None
    serial: str | None = None
    pci_bus_id: str | None = None
    driver_version: str | None = None
    runtime_version: str | None = None  # CUDA / HIP / CANN / … version torch was built with
    compute_units: int | None = None  # SMs, CUs, AI cores, CPU threads
    extra: dict[str, Any] = field(default_factory=dict)


class Timer(abc.ABC):
    """A pair of device timestamps around enqueued work (device events where the device has them)."""

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def elapsed_ms(self) -> float:
        """Milliseconds between start and stop; blocks until the stop marker has completed."""


class Backend(abc.ABC):
    """One device family as torch presents it (``cpu``, ``cuda``, ``npu``, ``mlu``, ``musa``, ``xpu``)."""

    #: name used on the command line (``--backend``)
    name: str = ""
    #: torch device type string (``torch.device(type, index)``)
    device_type: str = ""
    #: whether the backend can capture and replay device graphs (CUDA graphs)
    supports_graphs: bool = False

    @classmethod
    @abc.abstractmethod
    def is_available(cls) -> bool:
        """True when the runtime is importable and sees at least one device. Never raises."""

    @abc.abstractmethod
    def device_count(self) -> int: ...

    def device(self, index: int) -> Any:
        """The ``torch.device`` for device ``index``."""
        import torch

        return torch.device(self.device_type, index)

    @abc.abstractmethod
    def synchronize(self, index: int) -> None: ...

    @abc.abstractmethod
    def timer(self, index: int) -> Timer: ...

    @abc.abstractmethod
    def memory_info(self, index: int) -> tuple[int, int]:
        """(free_bytes, total_bytes) of device memory."""

    @abc.abstractmethod
    def device_info(self, index: int) -> DeviceInfo: ...

    def supported_dtypes(self, index: int) -> list[str]:
        """GEMM dtype names (see :mod:`icb_bench.kernels.dtypes`) this device can run."""
        from ..dtypes import probe_supported

        return probe_supported(self, index)

    @contextlib.contextmanager
    def numeric_mode(self, dtype: str) -> Iterator[dict[str, Any]]:
        """Set the library's numeric flags for ``dtype`` (TF32 on for ``tf32``, off for ``fp32``),
        yield the flags as set, and restore the previous ones on exit."""
        yield {}
