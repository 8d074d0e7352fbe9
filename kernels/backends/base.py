"""The one interface every device family implements.

Modelled on Zeus's `zeus/device/`: an abstract device family, one module per vendor, vendor
errors translated into :mod:`icb_bench.kernels.errors` at the boundary.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..errors import BackendUnavailable, DeviceError, KernelError, OutOfMemory


#: vendor keys whose parts count as domestic (国产) for the specification's domestic-share indicators;
#: backends that know better set ``DeviceInfo.extra["domestic"]`` themselves (all built-in ones do)
DOMESTIC_VENDORS = frozenset({
    "huawei", "cambricon", "moorethreads", "hygon", "kunlunxin", "metax", "iluvatar", "enflame", "biren",
    "zhaoxin", "phytium", "loongson",
})


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
    #: what this one device is: a whole "card", one "die" of a multi-die card (MI250X GCD), or a
    #: "chip"; with ``dies_per_card`` devices of that unit per card (see backends.families)
    unit: str = "card"
    dies_per_card: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def domestic(self) -> bool:
        """Whether the part counts as domestic: the backend's own word, else the vendor table."""
        flag = self.extra.get("domestic")
        return bool(flag) if flag is not None else self.vendor.lower() in DOMESTIC_VENDORS


class Timer(abc.ABC):
    """A pair of device timestamps around enqueued work (device events where the device has them)."""

    #: how the interval is measured: "events" (device timestamps) or "wall" (host clock)
    method: str = "events"

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
    #: GEMM shapes to search: small ones (≤ 1024) for slow devices such as CPUs, large ones
    #: (4096–16384) for accelerators, whose throughput small shapes understate
    prefers_small_shapes: bool = False
    #: what to install when the backend is unavailable (shown in BackendUnavailable messages)
    install_hint: str = ""
    #: torch.distributed backend for device-side collectives of this family (hccl, cncl, mccl,
    #: nccl, xccl, gloo); orchestration itself always coordinates over gloo
    collective_backend: str = "gloo"

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
        yield the flags as set, and restore the previous ones on exit.

        The default sets torch's process-wide matmul flags, which every torch build has; vendor
        backends extend it with their own switches (Ascend HF32, …)."""
        from ._torch_flags import torch_matmul_flags

        with torch_matmul_flags(dtype) as flags:
            yield flags

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why :meth:`is_available` is False (None when it is available). Never raises."""
        if cls.is_available():
            return None
        hint = f"; {cls.install_hint}" if cls.install_hint else ""
        return f"backend {cls.name!r} sees no usable device{hint}"

    def configure_worker(self, index: int, count: int) -> None:
        """Hook run once in each worker process (one per device, ``count`` in all) before work."""

    def dtype_unsupported_reason(self, index: int, dtype: str) -> str | None:
        """A known reason the device cannot run ``dtype`` (checked before probing), else None."""
        return None

    def generator(self, index: int, seed: int) -> Any | None:
        """A seeded ``torch.Generator`` on the device, or None where the device has none (the
        caller then generates on the CPU and copies)."""
        import torch

        try:
            gen = torch.Generator(device=self.device(index))
        except (RuntimeError, TypeError, ValueError):
            return None
        gen.manual_seed(seed)
        return gen

    def capture_graph(self, index: int, fn: Callable[[], None]) -> Callable[[], None]:
        """Capture the device work ``fn`` enqueues into a graph; return its replay function.

        Only called when :attr:`supports_graphs` is True; raises KernelError if capture fails."""
        raise KernelError(f"backend {self.name!r} cannot capture graphs")

    def device_context(self, index: int) -> Any:
        """A context manager making ``index`` the current device (streams, graphs, events)."""
        return contextlib.nullcontext()

    def empty_cache(self, index: int) -> None:
        """Give cached, unused device memory back (after freeing a workload)."""

    def translate_error(self, exc: BaseException) -> KernelError:
        """The kernels error for a vendor/torch exception raised by device work."""
        if isinstance(exc, KernelError):
            return exc
        if isinstance(exc, ImportError):
            return BackendUnavailable(f"{self.name}: {exc}")
        text = str(exc)
        oom_type = type(exc).__name__ == "OutOfMemoryError"  # torch.OutOfMemoryError and vendor twins
        if isinstance(exc, MemoryError) or oom_type or "out of memory" in text.lower():
            return OutOfMemory(f"{self.name}: out of memory: {text.splitlines()[0] if text else exc!r}")
        return DeviceError(f"{self.name}: {type(exc).__name__}: {text}")
