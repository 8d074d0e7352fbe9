"""NVIDIA GPU power through NVML (``pynvml`` from the ``nvidia-ml-py`` package).

``pynvml`` is imported lazily inside :meth:`NvmlReader.open`; every ``pynvml.NVMLError`` is
translated into :class:`PowerError` here (or handled), so no NVML type leaks out. ``nvmlInit`` /
``nvmlShutdown`` are reference-counted across readers of one process.

Energy: ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load, Volta+, updated every
~20-100 ms). Power: field ``NVML_FI_DEV_POWER_INSTANT`` (186) where the driver supports it, else
``nvmlDeviceGetPowerUsage`` (a 1 s average on Ampere and newer, except GA100).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from .base import PowerError, PowerReader, PowerSample
from .library import SharedLibrary

#: clock event reasons that mean the device was throttled: thermal and hardware slowdowns (an
#: external power brake is a hardware slowdown). Sitting at the power cap is not among them.
THROTTLE_FLAGGED: dict[int, str] = {
    0x8: "HwSlowdown",
    0x20: "SwThermal",
    0x40: "HwThermal",
    0x80: "HwPowerBrake",
}
#: reasons that describe the operating point, not throttling: a sustained GEMM normally runs at
#: its power limit (recorded as ``at_power_limit``)
THROTTLE_OPERATING_POINT: dict[int, str] = {
    0x4: "SwPowerCap",
}
#: reasons that are reported but do not flag a window
THROTTLE_IGNORED: dict[int, str] = {
    0x1: "GpuIdle",
    0x2: "ApplicationsClocksSetting",
    0x10: "SyncBoost",
    0x100: "DisplayClockSetting",
}

FI_DEV_POWER_INSTANT = 186  # nvml.h NVML_FI_DEV_POWER_INSTANT

def _msg(e: BaseException) -> str:
    """A printable message for an NVML error (str() itself may call into NVML)."""
    try:
        text = str(e)
    except Exception:  # noqa: BLE001
        text = f"code {getattr(e, 'value', '?')}"
    return f"{type(e).__name__}: {text}"


def _load() -> Any:
    try:
        import pynvml
    except ImportError as e:
        raise PowerError("pynvml not installed (pip install nvidia-ml-py)") from e
    return pynvml


def _init(nv: Any) -> None:
    try:
        nv.nvmlInit()
    except nv.NVMLError as e:
        raise PowerError(f"NVML: init failed ({_msg(e)}): no NVIDIA driver here?") from None


_LIB = SharedLibrary(_load, _init, lambda nv: nv.nvmlShutdown())
_acquire, _release = _LIB.acquire, _LIB.release


def nvml_refcount() -> int:
    """Number of open NVML references in this process (for tests and diagnostics)."""
    return _LIB.refs


def normalize_uuid(uuid: str) -> str:
    """NVML spells UUIDs ``GPU-xxxxxxxx-...``; torch gives the bare hex form."""
    u = str(uuid).strip()
    if u.upper().startswith(("GPU-", "MIG-")):
        return u[:4].upper() + u[4:]
    return "GPU-" + u


def _decode_str(v: Any) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


class NvmlReader(PowerReader):
    """One NVIDIA GPU. Bound by ``uuid`` or ``pci_bus_id`` when given (preferred: the CUDA
    index differs from the NVML index under ``CUDA_VISIBLE_DEVICES`` or fastest-first ordering),
    else by the entry of ``CUDA_VISIBLE_DEVICES`` at ``index``, else by NVML index ``index``."""

    name = "nvml"
    energy_source = "nvml:nvmlDeviceGetTotalEnergyConsumption"
    counter_update_s = 0.1  # the counter updates every ~20-100 ms

    def __init__(self, index: int, *, uuid: str | None = None, pci_bus_id: str | None = None, scope: str = "device") -> None:
        self.index = int(index)
        self.uuid = uuid
        self.pci_bus_id = pci_bus_id
        self.scope = scope  # type: ignore[assignment]
        self._nvml: Any = None
        self._handle: Any = None
        self._has_counter = False
        self.counter_note: str | None = None
        self._use_instant = False
        self.power_source = "nvml:nvmlDeviceGetPowerUsage"
        self.matched_by: str | None = None
        self._events_fn: Callable[[Any], int] | None = None
        self._info: dict[str, Any] = {}

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        if self._handle is not None:
            return
        nv = _acquire()
        try:
            self._nvml = nv
            self._handle, self.matched_by = self._find_handle(nv)
            self._probe(nv)
        except BaseException:
            self._nvml = self._handle = None
            _release()
            raise

    def close(self) -> None:
        if self._handle is None:
            return
        self._handle = None
        self._nvml = None
        _release()

    def _find_handle(self, nv: Any) -> tuple[Any, str]:
        """The NVML handle for this device and how it was matched."""
        how: str
        try:
            if self.uuid:
                how = "uuid"
                return nv.nvmlDeviceGetHandleByUUID(normalize_uuid(self.uuid)), how
            if self.pci_bus_id:
                how = "pci_bus_id"
                return nv.nvmlDeviceGetHandleByPciBusId(str(self.pci_bus_id)), how
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            if visible is not None and visible.strip():
                entries = [x.strip() for x in visible.split(",") if x.strip()]
                if self.index >= len(entries):
                    raise PowerError(f"NVML: CUDA index {self.index} not in CUDA_VISIBLE_DEVICES={visible!r}")
                entry = entries[self.index]
                if entry.upper().startswith(("GPU-", "MIG-")):
                    how = "cuda_visible_devices:uuid"
                    return nv.nvmlDeviceGetHandleByUUID(entry), how
                if entry.isdigit():
                    how = "cuda_visible_devices:index (CUDA and NVML order agree only with CUDA_DEVICE_ORDER=PCI_BUS_ID)"
                    return nv.nvmlDeviceGetHandleByIndex(int(entry)), how
                raise PowerError(f"NVML: cannot map CUDA_VISIBLE_DEVICES entry {entry!r} to a device")
            how = "index (CUDA and NVML order agree only with CUDA_DEVICE_ORDER=PCI_BUS_ID)"
            return nv.nvmlDeviceGetHandleByIndex(self.index), how
        except nv.NVMLError as e:
            key = self.uuid or self.pci_bus_id or f"index {self.index}"
            raise PowerError(f"NVML: not an NVIDIA device or not found ({key}): {_msg(e)}") from None

    def _probe(self, nv: Any) -> None:
        """Decide which calls this device supports and collect its provenance."""
        h = self._handle
        # energy counter
        try:
            nv.nvmlDeviceGetTotalEnergyConsumption(h)
            self._has_counter, self.counter_note = True, None
        except nv.NVMLError_NotSupported:
            self._has_counter = False
            self.counter_note = "nvmlDeviceGetTotalEnergyConsumption not supported (pre-Volta?)"
        except nv.NVMLError as e:
            self._has_counter = False
            self.counter_note = f"nvmlDeviceGetTotalEnergyConsumption failed: {_msg(e)}"
        # instant power field, else the averaged power usage
        self._use_instant = self._read_instant_mw(nv) is not None
        if self._use_instant:
            self.power_source = "nvml:field NVML_FI_DEV_POWER_INSTANT"
        else:
            try:
                nv.nvmlDeviceGetPowerUsage(h)
            except nv.NVMLError as e:
                raise PowerError(f"NVML: no power reading on this device: {_msg(e)}") from None
            self.power_source = "nvml:nvmlDeviceGetPowerUsage (1 s average on Ampere+)"
        # clock event (throttle) reasons: renamed in newer bindings
        fn = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
            nv, "nvmlDeviceGetCurrentClocksThrottleReasons", None
        )
        self._events_fn = fn
        self._info = {
            "device_name": self._opt(lambda: _decode_str(nv.nvmlDeviceGetName(h))),
            "uuid": self._opt(lambda: _decode_str(nv.nvmlDeviceGetUUID(h))),
            "serial": self._opt(lambda: _decode_str(nv.nvmlDeviceGetSerial(h))),
            "pci_bus_id": self._opt(lambda: _decode_str(nv.nvmlDeviceGetPciInfo(h).busId)),
            "driver_version": self._opt(lambda: _decode_str(nv.nvmlSystemGetDriverVersion())),
            "nvml_version": self._opt(lambda: _decode_str(nv.nvmlSystemGetNVMLVersion())),
        }

    def _opt(self, fn: Callable[[], Any]) -> Any:
        """fn() or None when NVML cannot answer (not supported, no permission, ...)."""
        try:
            return fn()
        except self._nvml.NVMLError:
            return None
        except (AttributeError, TypeError):  # older bindings lacking a call or field
            return None

    def _read_instant_mw(self, nv: Any) -> float | None:
        """NVML_FI_DEV_POWER_INSTANT in mW, or None where the driver does not provide it."""
        if not hasattr(nv, "nvmlDeviceGetFieldValues"):
            return None
        fid = getattr(nv, "NVML_FI_DEV_POWER_INSTANT", FI_DEV_POWER_INSTANT)
        try:
            values = nv.nvmlDeviceGetFieldValues(self._handle, [fid])
        except nv.NVMLError:
            return None
        if not values:
            return None
        fv = values[0]
        if getattr(fv, "nvmlReturn", 0) != getattr(nv, "NVML_SUCCESS", 0):
            return None
        attr = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}.get(
            int(getattr(fv, "valueType", 1)), "uiVal"
        )
        return float(getattr(fv.value, attr))

    def _require_open(self) -> Any:
        if self._handle is None:
            raise PowerError("NvmlReader used before open()")
        return self._nvml

    # -- readings ---------------------------------------------------------------------------
    @property
    def has_energy_counter(self) -> bool:
        return self._has_counter

    def energy_j(self) -> float | None:
        if not self._has_counter:
            return None
        nv = self._require_open()
        try:
            return nv.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1000.0
        except nv.NVMLError as e:
            raise PowerError(f"NVML: energy counter read failed: {_msg(e)}") from None

    def power_w(self) -> float:
        """Instant power where supported, else the driver's averaged power usage."""
        nv = self._require_open()
        if self._use_instant:
            mw = self._read_instant_mw(nv)
            if mw is not None:
                return mw / 1000.0
        try:
            return nv.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
        except nv.NVMLError as e:
            raise PowerError(f"NVML: power read failed: {_msg(e)}") from None

    def sample(self) -> PowerSample:
        nv = self._require_open()
        h = self._handle
        t_s = time.monotonic()
        power_w = self.power_w()  # raises PowerError: a sample without power is a failed sample
        energy_j: float | None = None
        if self._has_counter:
            energy_j = self._opt(lambda: nv.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0)
        limit_mw = self._opt(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h))
        events = self._opt(lambda: int(self._events_fn(h))) if self._events_fn else None
        return PowerSample(
            t_s=t_s,
            power_w=power_w,
            energy_j=energy_j,
            sm_clock_mhz=self._opt(lambda: float(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))),
            mem_clock_mhz=self._opt(lambda: float(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM))),
            temperature_c=self._opt(lambda: float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))),
            power_limit_w=(limit_mw / 1000.0) if limit_mw is not None else None,
            throttle_reasons=events,
        )

    def decode_throttle(self, reasons: int | None) -> list[str]:
        """Thermal and hardware slowdowns only (see :data:`THROTTLE_FLAGGED`)."""
        if not reasons:
            return []
        return [name for bit, name in THROTTLE_FLAGGED.items() if reasons & bit]

    def decode_operating_point(self, reasons: int | None) -> list[str]:
        """Reasons that say the device sits at its power limit (``SwPowerCap``)."""
        if not reasons:
            return []
        return [name for bit, name in THROTTLE_OPERATING_POINT.items() if reasons & bit]

    def power_limits(self) -> dict[str, float | None]:
        """The power limit in force, the one set by management, its default and its allowed range
        (W; None where NVML cannot answer)."""
        nv = self._require_open()
        h = self._handle

        def watts(fn: Callable[[], Any]) -> float | None:
            mw = self._opt(fn)
            return float(mw) / 1000.0 if mw is not None else None

        constraints = self._opt(lambda: nv.nvmlDeviceGetPowerManagementLimitConstraints(h))
        lo, hi = (constraints if isinstance(constraints, (list, tuple)) and len(constraints) == 2 else (None, None))
        return {
            "limit_w": watts(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h)),
            "management_limit_w": watts(lambda: nv.nvmlDeviceGetPowerManagementLimit(h)),
            "default_w": watts(lambda: nv.nvmlDeviceGetPowerManagementDefaultLimit(h)),
            "min_w": float(lo) / 1000.0 if lo is not None else None,
            "max_w": float(hi) / 1000.0 if hi is not None else None,
        }

    @staticmethod
    def decode_all(reasons: int | None) -> list[str]:
        """All named reasons in a bitmask, flagged or not (for display)."""
        if not reasons:
            return []
        table = {**THROTTLE_IGNORED, **THROTTLE_OPERATING_POINT, **THROTTLE_FLAGGED}
        return [table[bit] for bit in sorted(table) if reasons & bit]

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "scope": self.scope, "index": self.index, "library": "pynvml (nvidia-ml-py)"}
        if self._handle is None:
            d["open"] = False
            return d
        nv = self._nvml
        limit_mw = self._opt(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(self._handle))
        d.update(self._info)
        d.update(
            {
                "matched_by": self.matched_by,
                "power_limit_w": (limit_mw / 1000.0) if limit_mw is not None else None,
                "power_limits": self.power_limits(),
                "energy_counter": self._has_counter,
                "energy_source": self.energy_source if self._has_counter else None,
                "energy_counter_note": self.counter_note,
                "power_source": self.power_source,
            }
        )
        return d
