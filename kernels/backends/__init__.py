"""Backend registry: a name on the command line -> the class that drives that device family.

The registry is data (name -> "module:Class"); modules are imported only when their backend is
asked for, so a missing vendor plugin never breaks the others.
"""

from __future__ import annotations

import importlib

from ..errors import BackendUnavailable
from .base import Backend, DeviceInfo, Timer

#: backend name -> "module:Class" (module relative to this package)
REGISTRY: dict[str, str] = {
    "cuda": "cuda:CudaBackend",
    "npu": "npu:NpuBackend",
    "mlu": "mlu:MluBackend",
    "musa": "musa:MusaBackend",
    "xpu": "xpu:XpuBackend",
    "cpu": "cpu:CpuBackend",
}

#: what to install for each backend when it cannot be loaded at all
INSTALL_HINTS: dict[str, str] = {
    "cuda": "a CUDA or ROCm build of torch and the vendor driver",
    "npu": "torch_npu and the CANN toolkit (Huawei Ascend)",
    "mlu": "torch_mlu and Cambricon Neuware",
    "musa": "torch_musa and the MUSA toolkit (Moore Threads)",
    "xpu": "an XPU build of torch and Intel's GPU runtime",
    "cpu": "torch",
}

#: accelerators tried by detect_backend(), in this order; "cpu" is the fallback. CUDA first:
#: it is the most common, and ROCm/DCU builds present as torch.cuda too; plugins follow.
DETECT_ORDER: tuple[str, ...] = ("cuda", "npu", "mlu", "musa", "xpu")

BACKEND_NAMES: tuple[str, ...] = tuple(REGISTRY)


def backend_class(name: str) -> type[Backend]:
    """The Backend class registered as ``name`` (imports its module)."""
    if name not in REGISTRY:
        raise BackendUnavailable(f"unknown backend {name!r}; known backends: {', '.join(BACKEND_NAMES)}")
    module_name, _, class_name = REGISTRY[name].partition(":")
    try:
        module = importlib.import_module(f".{module_name}", __name__)
    except ImportError as exc:
        raise BackendUnavailable(
            f"backend {name!r} cannot be loaded ({exc}); install {INSTALL_HINTS[name]}"
        ) from exc
    return getattr(module, class_name)


def get_backend(name: str) -> Backend:
    """An instance of backend ``name``; BackendUnavailable (saying what to install) if it has no
    usable device here."""
    cls = backend_class(name)
    reason = cls.unavailable_reason()
    if reason is not None:
        if "install" not in reason:
            reason = f"{reason}; install {INSTALL_HINTS[name]}"
        raise BackendUnavailable(reason)
    return cls()


def detect_backend() -> str:
    """The first available accelerator backend in :data:`DETECT_ORDER`, else ``"cpu"``."""
    for name in DETECT_ORDER:
        try:
            if backend_class(name).is_available():
                return name
        except BackendUnavailable:
            continue
    return "cpu"


__all__ = [
    "BACKEND_NAMES",
    "DETECT_ORDER",
    "REGISTRY",
    "Backend",
    "DeviceInfo",
    "Timer",
    "backend_class",
    "detect_backend",
    "get_backend",
]
