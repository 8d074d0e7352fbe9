"""A generic backend for torch device plugins (torch_npu, torch_mlu, torch_musa; xpu is in torch).

Such a plugin, once imported, registers a ``torch.<device_type>`` namespace shaped like
``torch.cuda`` (device_count, synchronize, Event, mem_get_info, get_device_name, …). One class
drives them all; each vendor module only names its plugin and any numeric switches of its own.
Vendor exceptions are translated into :mod:`icb_bench.kernels.errors` here, at the boundary.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any, Callable, Iterator, TypeVar

from ..errors import BackendUnavailable, KernelError
from .base import DOMESTIC_VENDORS, Backend, DeviceInfo, Timer
from .families import die_layout

T = TypeVar("T")


def generic_accelerator(device_type: str) -> Any | None:
    """``torch.accelerator`` when torch's device-generic API drives ``device_type`` (torch >= 2.6
    and the plugin registered as the current accelerator), else None (use ``torch.<type>``)."""
    import torch

    acc = getattr(torch, "accelerator", None)
    if acc is None or not hasattr(torch, "Event"):
        return None
    try:
        current = acc.current_accelerator()
    except Exception:  # noqa: BLE001 - an old or broken build just has no generic API
        return None
    return acc if current is not None and getattr(current, "type", None) == device_type else None


class PluginEventTimer(Timer):
    """Device events recorded on the device's current stream: ``torch.Event`` through
    ``torch.accelerator`` where torch drives the device generically, else the plugin's ``Event``."""

    method = "events"

    def __init__(self, runtime: Any, index: int, translate: Callable[[BaseException], KernelError],
                 accelerator: Any | None = None, device: Any = None) -> None:
        self._index = index
        self._translate = translate
        if accelerator is not None:
            import torch

            self.api = "torch.Event"
            self._current_stream = getattr(accelerator, "current_stream", None)
            self._start = torch.Event(device=device, enable_timing=True)
            self._stop = torch.Event(device=device, enable_timing=True)
        else:
            self.api = "plugin Event"
            self._current_stream = getattr(runtime, "current_stream", None)
            self._start = runtime.Event(enable_timing=True)
            self._stop = runtime.Event(enable_timing=True)

    def _record(self, event: Any) -> None:
        current_stream = self._current_stream
        try:
            if current_stream is not None:
                event.record(current_stream(self._index))
            else:
                event.record()
        except RuntimeError as exc:
            raise self._translate(exc) from exc

    def start(self) -> None:
        self._record(self._start)

    def stop(self) -> None:
        self._record(self._stop)

    def elapsed_ms(self) -> float:
        try:
            self._stop.synchronize()
            return float(self._start.elapsed_time(self._stop))
        except RuntimeError as exc:
            raise self._translate(exc) from exc


class PluginBackend(Backend):
    """Generic plugin backend; subclasses set the four class attributes below (and the name)."""

    #: torch namespace and device string the plugin registers ("npu", "mlu", "musa", "xpu")
    device_type: str = ""
    #: module to import to register it (None when the namespace is built into torch)
    plugin_module: str | None = None
    #: vendor key; whether it is domestic is DOMESTIC_VENDORS' word, not the backend's
    vendor: str = "unknown"

    # -- runtime access -----------------------------------------------------------------

    @classmethod
    def _runtime(cls) -> Any:
        """Import the plugin (lazily) and return ``torch.<device_type>``."""
        import torch

        if cls.plugin_module:
            try:
                importlib.import_module(cls.plugin_module)
            except ImportError as exc:
                hint = f" ({cls.install_hint})" if cls.install_hint else ""
                raise BackendUnavailable(
                    f"backend {cls.name!r}: cannot import {cls.plugin_module}: {exc}{hint}"
                ) from exc
            except Exception as exc:  # noqa: BLE001 - plugins can fail on import in many ways
                raise BackendUnavailable(
                    f"backend {cls.name!r}: importing {cls.plugin_module} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        runtime = None
        get_module = getattr(torch, "get_device_module", None)
        if get_module is not None:
            try:  # the device-generic lookup; stock torch refuses type strings it does not know
                runtime = get_module(cls.device_type)
            except (RuntimeError, ValueError, TypeError):
                runtime = None
        runtime = runtime if runtime is not None else getattr(torch, cls.device_type, None)
        if runtime is None:
            raise BackendUnavailable(
                f"backend {cls.name!r}: torch has no {cls.device_type!r} namespace"
                + (f" after importing {cls.plugin_module}" if cls.plugin_module else "")
            )
        return runtime

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call into the vendor runtime, translating its errors."""
        try:
            return fn(*args)
        except KernelError:
            raise
        except (RuntimeError, OSError, ImportError, MemoryError) as exc:
            raise self.translate_error(exc) from exc

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            runtime = cls._runtime()
        except BackendUnavailable as exc:
            return str(exc)
        try:
            if hasattr(runtime, "is_available") and not runtime.is_available():
                return f"backend {cls.name!r}: {cls.plugin_module or 'torch'} reports no usable device"
            if runtime.device_count() < 1:
                return f"backend {cls.name!r}: no {cls.device_type} device visible"
        except Exception as exc:  # noqa: BLE001 - runtime errors here mean "unavailable"
            return f"backend {cls.name!r}: runtime error: {type(exc).__name__}: {exc}"
        return None

    @classmethod
    def is_available(cls) -> bool:
        return cls.unavailable_reason() is None

    # -- Backend interface --------------------------------------------------------------

    def device_count(self) -> int:
        return int(self._call(self._runtime().device_count))

    def synchronize(self, index: int) -> None:
        acc = generic_accelerator(self.device_type)
        self._call((acc or self._runtime()).synchronize, index)

    def timer(self, index: int) -> Timer:
        acc = generic_accelerator(self.device_type)
        device = self.device(index) if acc is not None else None
        return self._call(PluginEventTimer, self._runtime(), index, self.translate_error, acc, device)

    def memory_info(self, index: int) -> tuple[int, int]:
        free, total = self._call(self._runtime().mem_get_info, index)
        return int(free), int(total)

    def device_context(self, index: int) -> Any:
        device_cm = getattr(self._runtime(), "device", None)
        return device_cm(index) if callable(device_cm) else contextlib.nullcontext()

    def empty_cache(self, index: int) -> None:
        empty = getattr(self._runtime(), "empty_cache", None)
        if callable(empty):
            self._call(empty)

    def _driver_version(self, index: int) -> str | None:
        """Vendor-specific driver version; subclasses may override."""
        return None

    def _runtime_version(self) -> str | None:
        if self.plugin_module:
            module = importlib.import_module(self.plugin_module)
            return getattr(module, "__version__", None)
        import torch

        return getattr(torch.version, self.device_type, None)

    def device_info(self, index: int) -> DeviceInfo:
        runtime = self._runtime()
        name = str(self._call(runtime.get_device_name, index))
        props = None
        if hasattr(runtime, "get_device_properties"):
            try:
                props = self._call(runtime.get_device_properties, index)
            except KernelError:
                props = None  # properties are optional provenance
        total = getattr(props, "total_memory", None)
        if total is None:
            total = self.memory_info(index)[1]
        units = None
        for attr in ("multi_processor_count", "cube_core_num", "gpu_eu_count", "cluster_count"):
            if getattr(props, attr, None) is not None:
                units = int(getattr(props, attr))
                break
        layout = die_layout(name)
        return DeviceInfo(
            index=index,
            backend=self.name,
            model=name,
            vendor=self.vendor,
            memory_total_bytes=int(total),
            uuid=str(props.uuid) if getattr(props, "uuid", None) is not None else None,
            driver_version=self._driver_version(index),
            runtime_version=self._runtime_version(),
            compute_units=units,
            unit=layout.unit,
            dies_per_card=layout.dies_per_card,
            extra={
                "domestic": self.vendor in DOMESTIC_VENDORS,
                "plugin": self.plugin_module,
                "die_layout": layout.source,
                "api": "torch.accelerator" if generic_accelerator(self.device_type) else f"torch.{self.device_type}",
            },
        )

    # -- numeric mode -------------------------------------------------------------------

    @contextlib.contextmanager
    def vendor_flags(self, dtype: str) -> Iterator[dict[str, Any]]:
        """The vendor's own reduced-precision switches for ``dtype``; none by default."""
        yield {}

    @contextlib.contextmanager
    def numeric_mode(self, dtype: str) -> Iterator[dict[str, Any]]:
        with super().numeric_mode(dtype) as torch_flags, self.vendor_flags(dtype) as vendor:
            yield {**torch_flags, **vendor}


@contextlib.contextmanager
def switch_attr(obj: Any, attr: str, value: Any, key: str) -> Iterator[dict[str, Any]]:
    """Set ``obj.attr`` to ``value``, yield {key: value as read back}, restore on exit.

    A missing ``obj`` or attribute yields {key: "absent"} so the record shows it was not set."""
    if obj is None or not hasattr(obj, attr):
        yield {key: "absent"}
        return
    previous = getattr(obj, attr)
    setattr(obj, attr, value)
    try:
        yield {key: getattr(obj, attr)}
    finally:
        setattr(obj, attr, previous)


def resolve(path: str) -> Any:
    """``a.b.c`` resolved from an already-imported module ``a`` (None if any part is missing)."""
    import sys

    head, *rest = path.split(".")
    obj: Any = sys.modules.get(head)
    for part in rest:
        if obj is None:
            return None
        obj = getattr(obj, part, None)
    return obj
