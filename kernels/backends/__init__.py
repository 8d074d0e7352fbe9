"""Backend registry: a name on the command line -> the class that drives that device family.

The registry is data (name -> "module:Class"); modules are imported only when their backend is
asked for, so a missing vendor plugin never breaks the others.
"""

from __future__ import annotations

import importlib
import os
from importlib import metadata

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

#: entry-point group through which another package adds a backend ("name = package.module:Class")
ENTRY_POINT_GROUP = "icb_bench.backends"
#: environment variable adding backends without packaging: "name=package.module:Class,…"
BACKENDS_ENV = "ICB_BENCH_BACKENDS"


def external_backends() -> dict[str, str]:
    """Backends added from outside this package: installed entry points, then $ICB_BENCH_BACKENDS.
    A vendor can ship its own backend module without a change here (the names in the built-in
    registry cannot be replaced)."""
    found: dict[str, str] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.value
    for item in filter(None, (x.strip() for x in os.environ.get(BACKENDS_ENV, "").split(","))):
        name, sep, target = item.partition("=")
        if not sep or ":" not in target:
            raise BackendUnavailable(f"${BACKENDS_ENV}: {item!r} is not name=package.module:Class")
        found[name.strip()] = target.strip()
    return {k: v for k, v in found.items() if k not in REGISTRY}


def backend_names() -> tuple[str, ...]:
    """Every backend name: the built-in ones, then those added from outside."""
    return BACKEND_NAMES + tuple(external_backends())


def backend_class(name: str) -> type[Backend]:
    """The Backend class registered as ``name`` (imports its module)."""
    external = {} if name in REGISTRY else external_backends()
    if name not in REGISTRY and name not in external:
        raise BackendUnavailable(f"unknown backend {name!r}; known backends: {', '.join(backend_names())}")
    target = REGISTRY.get(name) or external[name]
    module_name, _, class_name = target.partition(":")
    hint = INSTALL_HINTS.get(name, f"the package providing {module_name}")
    try:
        # built-in modules are relative to this package; external ones are absolute
        module = importlib.import_module(f".{module_name}", __name__) if name in REGISTRY else importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise BackendUnavailable(f"backend {name!r} cannot be loaded ({exc}); install {hint}") from exc
    return cls


def get_backend(name: str) -> Backend:
    """An instance of backend ``name``; BackendUnavailable (saying what to install) if it has no
    usable device here."""
    cls = backend_class(name)
    reason = cls.unavailable_reason()
    if reason is not None:
        if "install" not in reason and name in INSTALL_HINTS:
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
    "backend_names",
    "external_backends",
    "detect_backend",
    "get_backend",
]
