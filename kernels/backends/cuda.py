"""Devices that torch presents as ``torch.cuda``: NVIDIA CUDA, and ROCm/HIP builds (AMD, Hygon DCU,
and other CUDA-compatible domestic parts), told apart by ``torch.version.hip`` and the device name.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from ..errors import DeviceError, KernelError
from .base import DOMESTIC_VENDORS, Backend, DeviceInfo, Timer
from .families import die_layout, identify_cuda_vendor


def cuda_vendor(device_name: str, hip: bool) -> tuple[str, bool]:
    """(vendor, domestic) for a torch.cuda device name; ``hip`` for ROCm builds. The vendor comes
    from :data:`~.families.CUDA_VENDOR_RULES`, domesticity from the one vendor table."""
    vendor, _ = identify_cuda_vendor(device_name, hip)
    return vendor, vendor in DOMESTIC_VENDORS


class CudaEventTimer(Timer):
    """``torch.cuda.Event`` pair recorded on the device's current stream."""

    method = "events"

    def __init__(self, index: int) -> None:
        import torch

        self._index = index
        self._start = torch.cuda.Event(enable_timing=True)
        self._stop = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        import torch

        self._start.record(torch.cuda.current_stream(self._index))

    def stop(self) -> None:
        import torch

        self._stop.record(torch.cuda.current_stream(self._index))

    def elapsed_ms(self) -> float:
        self._stop.synchronize()  # blocks only until this batch's stop marker, not the device
        return float(self._start.elapsed_time(self._stop))


def _nvml_details(uuid: str | None) -> dict[str, Any]:
    """Driver version (and serial where the part has one) from NVML; empty when pynvml is
    missing or fails — it is optional provenance, never a reason to stop."""
    try:
        import pynvml  # lazy: nvidia-ml-py is optional at run time
    except ImportError:
        return {}
    out: dict[str, Any] = {}
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - any NVML failure only loses provenance
        return {}
    try:
        version = pynvml.nvmlSystemGetDriverVersion()
        out["driver_version"] = version.decode() if isinstance(version, bytes) else str(version)
        if uuid:
            # look up by UUID, not index: CUDA_VISIBLE_DEVICES renumbers CUDA but not NVML
            nvml_uuid = uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
            handle = pynvml.nvmlDeviceGetHandleByUUID(nvml_uuid)
            try:
                serial = pynvml.nvmlDeviceGetSerial(handle)
                out["serial"] = serial.decode() if isinstance(serial, bytes) else str(serial)
            except Exception:  # noqa: BLE001 - consumer parts have no serial
                pass
            try:
                pci = pynvml.nvmlDeviceGetPciInfo(handle)
                bus = pci.busId
                out["pci_bus_id"] = bus.decode() if isinstance(bus, bytes) else str(bus)
            except Exception:  # noqa: BLE001
                pass
    except Exception:  # noqa: BLE001
        pass
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
    return out


class CudaBackend(Backend):
    """NVIDIA CUDA and ROCm/HIP devices through ``torch.cuda``; CUDA-graph replay timing."""

    name = "cuda"
    device_type = "cuda"
    supports_graphs = True  # HIP graphs too, through the same torch.cuda.graph API
    install_hint = "install a CUDA (or ROCm) build of torch and the vendor driver"
    collective_backend = "nccl"  # torch names RCCL (ROCm, DCU) "nccl" too

    @classmethod
    def is_available(cls) -> bool:
        return cls.unavailable_reason() is None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why there is no usable torch.cuda device: no torch, a CPU-only build, a driver that
        fails to initialise, or no device visible. Never raises."""
        try:
            import torch
        except Exception as exc:  # noqa: BLE001 - "never raises"
            return f"backend 'cuda': torch cannot be imported ({type(exc).__name__}: {exc})"
        runtime = getattr(torch.version, "hip", None) or getattr(torch.version, "cuda", None)
        if runtime is None:
            return (f"backend 'cuda': this torch ({torch.__version__}) is a CPU-only build; "
                    f"{cls.install_hint}")
        try:
            count = int(torch.cuda.device_count())
            if count > 0 and not torch.cuda.is_available():
                return "backend 'cuda': torch.cuda.is_available() is False although devices are counted"
        except Exception as exc:  # noqa: BLE001 - a failing driver is reported, not raised
            return f"backend 'cuda': the driver failed to initialise ({type(exc).__name__}: {exc})"
        if count < 1:
            visible = [f"{k}={v!r}" for k in ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
                       if (v := os.environ.get(k)) is not None]
            return ("backend 'cuda': no device visible"
                    + (f" ({', '.join(visible)})" if visible else " (driver loaded? device present?)"))
        return None

    @staticmethod
    def is_hip() -> bool:
        import torch

        return getattr(torch.version, "hip", None) is not None

    def device_count(self) -> int:
        import torch

        try:
            return torch.cuda.device_count()
        except RuntimeError as exc:
            raise self.translate_error(exc) from exc

    def synchronize(self, index: int) -> None:
        import torch

        try:
            torch.cuda.synchronize(index)
        except RuntimeError as exc:
            raise self.translate_error(exc) from exc

    def timer(self, index: int) -> Timer:
        return CudaEventTimer(index)

    def memory_info(self, index: int) -> tuple[int, int]:
        import torch

        try:
            free, total = torch.cuda.mem_get_info(index)
        except RuntimeError as exc:
            raise self.translate_error(exc) from exc
        return int(free), int(total)

    def capability(self, index: int) -> tuple[int, int]:
        import torch

        return tuple(torch.cuda.get_device_capability(index))  # type: ignore[return-value]

    def dtype_unsupported_reason(self, index: int, dtype: str) -> str | None:
        if self.is_hip():
            return None  # ROCm: let the probe decide (gfx94x fp8 uses the *fnuz* formats)
        major, minor = self.capability(index)
        if dtype == "fp8" and (major, minor) < (8, 9):
            return f"fp8 needs compute capability >= 8.9 (Ada/Hopper); device has {major}.{minor}"
        if dtype in ("tf32", "bf16") and major < 8:
            return f"{dtype} needs compute capability >= 8.0 (Ampere); device has {major}.{minor}"
        return None

    def device_info(self, index: int) -> DeviceInfo:
        import torch

        try:
            props = torch.cuda.get_device_properties(index)
        except (RuntimeError, AssertionError) as exc:
            raise self.translate_error(exc) from exc
        hip = self.is_hip()
        vendor, vendor_rule = identify_cuda_vendor(props.name, hip)
        layout = die_layout(props.name)
        uuid_raw = getattr(props, "uuid", None)
        uuid = str(uuid_raw) if uuid_raw is not None else None
        nvml = _nvml_details(uuid) if vendor == "nvidia" else {}  # NVML knows only NVIDIA parts
        pci_bus_id = nvml.get("pci_bus_id")
        if pci_bus_id is None and hasattr(props, "pci_bus_id"):
            pci_bus_id = (
                f"{getattr(props, 'pci_domain_id', 0):08x}:{props.pci_bus_id:02x}:"
                f"{getattr(props, 'pci_device_id', 0):02x}.0"
            )
        extra: dict[str, Any] = {
            "domestic": vendor in DOMESTIC_VENDORS,
            "vendor_rule": vendor_rule,
            "die_layout": layout.source,
            "capability": f"{props.major}.{props.minor}",
        }
        if hip:
            extra["gcn_arch"] = getattr(props, "gcnArchName", None)
        return DeviceInfo(
            index=index,
            backend=self.name,
            model=props.name,
            vendor=vendor,
            memory_total_bytes=int(props.total_memory),
            uuid=f"GPU-{uuid}" if uuid and not hip and not uuid.startswith("GPU-") else uuid,
            serial=nvml.get("serial"),
            pci_bus_id=pci_bus_id,
            driver_version=nvml.get("driver_version"),
            runtime_version=(torch.version.hip if hip else torch.version.cuda),
            compute_units=int(props.multi_processor_count),
            unit=layout.unit,
            dies_per_card=layout.dies_per_card,
            extra=extra,
        )

    def capture_graph(self, index: int, fn: Callable[[], None]) -> Callable[[], None]:
        """Capture ``fn``'s kernels into a CUDA graph (warm-up on a side stream first, as the
        torch docs prescribe, so lazy cuBLAS/workspace setup happens outside the capture)."""
        import torch

        try:
            with torch.cuda.device(index):
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    fn()
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    fn()
                torch.cuda.synchronize(index)
        except Exception as exc:  # noqa: BLE001 - any capture failure means "fall back to eager"
            raise KernelError(f"CUDA graph capture failed: {type(exc).__name__}: {exc}") from exc
        return graph.replay  # the bound method keeps the graph (and its memory pool) alive

    def device_context(self, index: int) -> Any:
        import torch

        return torch.cuda.device(index)

    def empty_cache(self, index: int) -> None:
        import torch

        try:
            with torch.cuda.device(index):
                torch.cuda.empty_cache()
        except RuntimeError as exc:
            raise DeviceError(f"cuda: empty_cache failed: {exc}") from exc
