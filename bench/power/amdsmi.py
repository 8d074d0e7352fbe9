"""AMD (and, where its driver answers the same library, Hygon DCU) power through ``amdsmi``.

``amdsmi`` (the ROCm AMD SMI Python package, ``py-interface/amdsmi_interface.py`` in ROCm/amdsmi)
is imported lazily inside :meth:`AmdSmiReader.open`; every ``AmdSmiException`` is translated into
:class:`PowerError` here (or handled), so no amdsmi type leaks out. ``amdsmi_init`` /
``amdsmi_shut_down`` are reference-counted across readers of one process.

Energy: ``amdsmi_get_energy_count`` returns ``energy_accumulator`` (``power`` before ROCm 6.1,
still returned as a deprecated alias) in units of ``counter_resolution`` µJ (15.3 µJ on every ASIC
so far) and a ``timestamp`` in ns. It comes from the kernel's ``gpu_metrics`` table, where the
accumulator is 64-bit from ``gpu_metrics_v1_1`` on but 32-bit in ``v1_0`` (older ASICs; wraps
after 2^32 x 15.3 µJ ~ 65.7 kJ, i.e. ~90 s at 700 W). A 32-bit wrap is unwrapped here, which
needs a read at least once per wrap period: the sampler's polling provides that. A 64-bit
accumulator does not wrap in practice (2^64 counts ~ 2.8e14 J). The call is "not supported on
virtual machine guest" (amdsmi.h): there the reader has no counter and the sampler integrates the
polled power. Known defects the sampler already guards against: a counter that does not advance
(MI100 until reboot, ROCm/amdsmi#38) and one that steps backwards (ROCm/amdsmi#115) -- the window
then falls back to the polled power, with the reason in its note.

Power: ``amdsmi_get_power_info`` in W: ``socket_power`` (amdsmi 6.4+), ``current_socket_power``
(MI300 and newer) or ``average_socket_power`` (MI200 and older, a firmware average); unsupported
members read ``"N/A"`` (older bindings) or the all-ones sentinel (newer ones).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

from .base import PowerError, PowerReader, PowerSample
from .library import SharedLibrary

#: AMDSMI_STATUS_NOT_SUPPORTED in amdsmi.h
STATUS_NOT_SUPPORTED = 2
#: the 32-bit accumulator of gpu_metrics_v1_0 wraps at this many counts
WRAP_32 = 1 << 32
#: values amdsmi uses for "unsupported" (UINT16_MAX from the metrics table, UINT32/64_MAX)
_SENTINELS = {0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF}
#: power_info keys tried in order, with how the value should be described
POWER_KEYS: tuple[tuple[str, str], ...] = (
    ("socket_power", "socket power"),
    ("current_socket_power", "current (instant) socket power"),
    ("average_socket_power", "average socket power (a firmware average, not instant)"),
)



def _msg(e: BaseException) -> str:
    """A one-line message for an amdsmi error (its __str__ spans lines)."""
    try:
        text = " ".join(str(e).split())
    except Exception:  # noqa: BLE001
        text = f"code {getattr(e, 'err_code', '?')}"
    return f"{type(e).__name__}: {text}"


def _not_supported(e: BaseException) -> bool:
    return getattr(e, "err_code", None) == STATUS_NOT_SUPPORTED or "NOT_SUPPORTED" in str(e).upper()


def _load() -> Any:
    try:
        import amdsmi
    except Exception as e:  # noqa: BLE001 - a missing libamd_smi.so surfaces as KeyError/OSError at import
        raise PowerError(
            f"amdsmi: Python package not importable ({type(e).__name__}: {e}); install the ROCm "
            "amd-smi-lib package (a Hygon DTK ships hy-smi instead: the hy-smi reader is tried next)"
        ) from None
    return amdsmi


def _init(amdsmi: Any) -> None:
    flags = getattr(amdsmi, "AmdSmiInitFlags", None)
    try:
        if flags is not None and hasattr(flags, "INIT_AMD_GPUS"):
            amdsmi.amdsmi_init(flags.INIT_AMD_GPUS)
        else:
            amdsmi.amdsmi_init()
    except getattr(amdsmi, "AmdSmiException", Exception) as e:
        raise PowerError(f"amdsmi: init failed ({_msg(e)}): no amdgpu driver loaded here?") from None


_LIB = SharedLibrary(_load, _init, lambda amdsmi: amdsmi.amdsmi_shut_down())
_acquire, _release = _LIB.acquire, _LIB.release


def amdsmi_refcount() -> int:
    """Number of open amdsmi references in this process (for tests and diagnostics)."""
    return _LIB.refs


def parse_bdf(bdf: str) -> tuple[int, int, int, int] | None:
    """(domain, bus, device, function) of a PCI address in any of the spellings in use:
    amdsmi's ``0000:23:00.0``, torch's ``00000000:23:00.0``, lspci's ``23:00.0``."""
    text = str(bdf).strip().lower()
    head, dot, func = text.rpartition(".")
    if not dot:
        head, func = text, "0"
    parts = head.split(":")
    if len(parts) == 2:
        parts = ["0", *parts]
    if len(parts) != 3:
        return None
    try:
        domain, bus, dev = (int(p, 16) for p in parts)
        return domain, bus, dev, int(func, 16)
    except ValueError:
        return None


def normalize_uuid(uuid: str) -> str:
    """Compare UUIDs without the ``GPU-`` prefix, dashes or case (HIP and amdsmi spell them apart)."""
    u = str(uuid).strip().lower()
    if u.startswith("gpu-"):
        u = u[4:]
    return u.replace("-", "")


def _valid_number(v: Any) -> float | None:
    """A reading as float, or None for "N/A", missing and the all-ones sentinels."""
    if v is None or isinstance(v, str) or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if int(f) in _SENTINELS or f < 0:
        return None
    return f


class AmdSmiReader(PowerReader):
    """One AMD (or Hygon) GPU through amdsmi. Bound by ``pci_bus_id`` when given (the most
    reliable: HIP and amdsmi spell UUIDs differently), else ``uuid``, else by the entry of
    ``HIP_VISIBLE_DEVICES``/``ROCR_VISIBLE_DEVICES``/``CUDA_VISIBLE_DEVICES`` at ``index``, else by
    amdsmi's handle order (which agrees with HIP's only when no visibility variable is set)."""

    name = "amdsmi"
    energy_source = "amdsmi:amdsmi_get_energy_count"
    #: not documented by AMD; the sampler's short-window note is skipped when None
    counter_update_s: float | None = None

    def __init__(
        self,
        index: int,
        *,
        uuid: str | None = None,
        pci_bus_id: str | None = None,
        scope: str = "device",
        vendor: str | None = None,
    ) -> None:
        self.index = int(index)
        self.vendor = (vendor or "").lower() or None
        self.uuid = uuid
        self.pci_bus_id = pci_bus_id
        self.scope = scope  # type: ignore[assignment]
        self._smi: Any = None
        self._handle: Any = None
        self._exc: type[BaseException] = Exception
        self._has_counter = False
        self.counter_note: str | None = None
        self.counter_resolution_uj: float | None = None
        self.power_source = "none"
        self._power_key: str | None = None
        self._power_via_metrics = False
        self.matched_by: str | None = None
        self._info: dict[str, Any] = {}
        self._temp_sensor: Any = None
        self._counter_lock = threading.Lock()
        self._last_raw: int | None = None
        self._wrap_offset = 0
        self.counter_wraps = 0
        self.counter_backward_steps = 0
        self.last_counter_timestamp_ns: int | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        if self._handle is not None:
            return
        try:
            smi = _acquire()
        except PowerError as e:
            raise self._hinted(e) from None
        try:
            self._smi = smi
            self._exc = getattr(smi, "AmdSmiException", Exception)
            self._handle, self.matched_by = self._find_handle(smi)
            self._probe(smi)
        except BaseException as e:
            self._smi = self._handle = None
            _release()
            if isinstance(e, PowerError):
                raise self._hinted(e) from None
            raise

    def _hinted(self, e: PowerError) -> PowerError:
        """The error, with what is known about Hygon DCUs added when the device is one."""
        if self.vendor == "hygon" and "hy-smi" not in str(e):
            return PowerError(f"{e} (Hygon DCU through amdsmi is untested on hardware; the hy-smi reader is tried next)")
        return e

    def close(self) -> None:
        if self._handle is None:
            return
        self._handle = None
        self._smi = None
        _release()

    def _find_handle(self, smi: Any) -> tuple[Any, str]:
        """The amdsmi processor handle for this device and how it was matched."""
        try:
            handles = list(smi.amdsmi_get_processor_handles())
        except self._exc as e:
            raise PowerError(f"amdsmi: cannot list devices: {_msg(e)}") from None
        if not handles:
            raise PowerError("amdsmi: no AMD GPU found")
        if self.pci_bus_id:
            want = parse_bdf(self.pci_bus_id)
            if want is None:
                raise PowerError(f"amdsmi: cannot parse pci_bus_id {self.pci_bus_id!r}")
            seen: list[str] = []
            exact, same_slot = [], []
            for h in handles:
                bdf = self._opt_call(smi.amdsmi_get_gpu_device_bdf, h)
                if bdf is None:
                    continue
                seen.append(str(bdf))
                got = parse_bdf(bdf)
                if got == want:
                    exact.append(h)
                elif got is not None and got[:3] == want[:3]:
                    same_slot.append(h)
            if len(exact) == 1:
                return exact[0], "pci_bus_id"
            # torch on ROCm reports function .0; a partitioned part may expose other functions
            if not exact and len(same_slot) == 1:
                return same_slot[0], "pci_bus_id (domain:bus:device; function differs)"
            raise PowerError(f"amdsmi: no single device at {self.pci_bus_id} (amdsmi sees {', '.join(seen) or 'none'})")
        if self.uuid:
            want_u = normalize_uuid(self.uuid)
            for h in handles:
                u = self._opt_call(smi.amdsmi_get_gpu_device_uuid, h)
                if u is not None and normalize_uuid(u) == want_u:
                    return h, "uuid"
            raise PowerError(f"amdsmi: no device with uuid {self.uuid}")
        for var in ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
            visible = os.environ.get(var)
            if visible is None or not visible.strip():
                continue
            entries = [x.strip() for x in visible.split(",") if x.strip()]
            if self.index >= len(entries) or not entries[self.index].isdigit():
                raise PowerError(f"amdsmi: cannot map HIP index {self.index} through {var}={visible!r}; pass pci_bus_id")
            phys = int(entries[self.index])
            if phys >= len(handles):
                raise PowerError(f"amdsmi: {var} entry {phys} but amdsmi sees {len(handles)} devices")
            return handles[phys], f"{var} index (assumes amdsmi and HIP enumerate in the same order)"
        if self.index >= len(handles):
            raise PowerError(f"amdsmi: index {self.index} but amdsmi sees {len(handles)} devices")
        return handles[self.index], "index (assumes amdsmi and HIP enumerate in the same order)"

    def _opt_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) or None when amdsmi cannot answer."""
        try:
            return fn(*args)
        except self._exc:
            return None
        except (AttributeError, TypeError, KeyError, ValueError):  # older bindings, odd payloads
            return None

    def _opt(self, fn: Callable[[], Any]) -> Any:
        return self._opt_call(fn)

    def _probe(self, smi: Any) -> None:
        """Decide which calls this device supports and collect its provenance."""
        h = self._handle
        # energy counter
        try:
            raw, res_uj, _ = self._read_raw(smi)
            if not res_uj > 0:
                self._has_counter, self.counter_note = False, f"amdsmi_get_energy_count: counter_resolution {res_uj!r}"
            else:
                self._has_counter, self.counter_note = True, None
                self.counter_resolution_uj = res_uj
                self._last_raw = raw
        except self._exc as e:
            self._has_counter = False
            if _not_supported(e):
                self.counter_note = "amdsmi_get_energy_count not supported (virtual machine guest?)"
            else:
                self.counter_note = f"amdsmi_get_energy_count failed: {_msg(e)}"
        except (KeyError, TypeError, ValueError) as e:
            self._has_counter = False
            self.counter_note = f"amdsmi_get_energy_count: unexpected payload ({type(e).__name__}: {e})"
        # power: power_info first; its status is that of the power-cap read, so it can fail
        # while the metrics table has the power -- then read the metrics table directly
        info = self._opt(lambda: smi.amdsmi_get_power_info(h))
        key = self._pick_power_key(info)
        if key is None and hasattr(smi, "amdsmi_get_gpu_metrics_info"):
            metrics = self._opt(lambda: smi.amdsmi_get_gpu_metrics_info(h))
            key = self._pick_power_key(metrics)
            self._power_via_metrics = key is not None
        self._power_key = key
        if key is not None:
            label = dict(POWER_KEYS)[key]
            call = "amdsmi_get_gpu_metrics_info" if self._power_via_metrics else "amdsmi_get_power_info"
            self.power_source = f"amdsmi:{call}[{key}] ({label})"
        elif not self._has_counter:
            raise PowerError(f"amdsmi: neither an energy counter ({self.counter_note}) nor a power reading on this device")
        # temperature: the hotspot (junction) sensor exists on MI300, where edge does not
        types = getattr(smi, "AmdSmiTemperatureType", None)
        metric = getattr(getattr(smi, "AmdSmiTemperatureMetric", None), "CURRENT", None)
        if types is not None and metric is not None:
            for sensor in ("HOTSPOT", "EDGE"):
                st = getattr(types, sensor, None)
                if st is not None and _valid_number(self._opt(lambda st=st: smi.amdsmi_get_temp_metric(h, st, metric))) is not None:
                    self._temp_sensor = st
                    break
        asic = self._opt(lambda: smi.amdsmi_get_gpu_asic_info(h)) or {}
        driver = self._opt(lambda: smi.amdsmi_get_gpu_driver_info(h)) or {}
        lib = self._opt(lambda: smi.amdsmi_get_lib_version())
        self._info = {
            "device_name": asic.get("market_name") if isinstance(asic, dict) else None,
            "uuid": self._opt(lambda: smi.amdsmi_get_gpu_device_uuid(h)),
            "pci_bus_id": self._opt(lambda: smi.amdsmi_get_gpu_device_bdf(h)),
            "driver_version": driver.get("driver_version") if isinstance(driver, dict) else None,
            "amdsmi_version": ".".join(str(lib[k]) for k in ("year", "major", "minor", "release") if k in lib)
            if isinstance(lib, dict)
            else (str(lib) if lib is not None else None),
        }

    @staticmethod
    def _pick_power_key(info: Any) -> str | None:
        if not isinstance(info, dict):
            return None
        for key, _ in POWER_KEYS:
            if _valid_number(info.get(key)) is not None:
                return key
        return None

    def _require_open(self) -> Any:
        if self._handle is None:
            raise PowerError("AmdSmiReader used before open()")
        return self._smi

    # -- energy counter ---------------------------------------------------------------------
    def _read_raw(self, smi: Any) -> tuple[int, float, int | None]:
        """(accumulator counts, resolution µJ, timestamp ns) straight from amdsmi."""
        d = smi.amdsmi_get_energy_count(self._handle)
        raw = d["energy_accumulator"] if "energy_accumulator" in d else d["power"]  # "power" before ROCm 6.1
        ts = d.get("timestamp")
        return int(raw), float(d["counter_resolution"]), (int(ts) if ts is not None else None)

    def _unwrap(self, raw: int) -> int:
        """The accumulator with 32-bit wraps undone. A backwards step that is not a wrap (a
        value already above 32 bits, or a small step) is passed through unchanged, so that the
        sampler sees it and falls back to the polled power instead of trusting the counter."""
        last = self._last_raw
        if last is not None and raw < last:
            if last < WRAP_32 and raw < WRAP_32 and last - raw > WRAP_32 // 2:
                self._wrap_offset += WRAP_32
                self.counter_wraps += 1
            else:
                self.counter_backward_steps += 1
        self._last_raw = raw
        return raw + self._wrap_offset

    @property
    def has_energy_counter(self) -> bool:
        return self._has_counter

    def energy_j(self) -> float | None:
        if not self._has_counter:
            return None
        smi = self._require_open()
        try:
            with self._counter_lock:
                raw, res_uj, ts = self._read_raw(smi)
                counts = self._unwrap(raw)
                self.last_counter_timestamp_ns = ts
        except self._exc as e:
            raise PowerError(f"amdsmi: energy counter read failed: {_msg(e)}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise PowerError(f"amdsmi: energy counter payload unreadable ({type(e).__name__}: {e})") from None
        return counts * res_uj * 1e-6  # µJ -> J

    # -- readings ---------------------------------------------------------------------------
    def power_w(self) -> float | None:
        """Socket power in W from the key chosen at open(), or None where the device has none."""
        smi = self._require_open()
        if self._power_key is None:
            return None
        h = self._handle
        try:
            info = smi.amdsmi_get_gpu_metrics_info(h) if self._power_via_metrics else smi.amdsmi_get_power_info(h)
        except self._exc as e:
            raise PowerError(f"amdsmi: power read failed: {_msg(e)}") from None
        value = _valid_number(info.get(self._power_key)) if isinstance(info, dict) else None
        if value is None:
            raise PowerError(f"amdsmi: {self._power_key} unavailable now ({info.get(self._power_key) if isinstance(info, dict) else info!r})")
        return value

    def sample(self) -> PowerSample:
        smi = self._require_open()
        h = self._handle
        t_s = time.monotonic()
        power_w = self.power_w()  # raises PowerError: a sample without power is a failed sample
        energy_j: float | None = None
        if self._has_counter:
            try:
                energy_j = self.energy_j()
            except PowerError:
                energy_j = None  # the trace loses one counter point; the window edges read it again
        temp = None
        if self._temp_sensor is not None:
            metric = smi.AmdSmiTemperatureMetric.CURRENT
            temp = _valid_number(self._opt(lambda: smi.amdsmi_get_temp_metric(h, self._temp_sensor, metric)))
            if temp is not None and temp > 1000:  # amdsmi.h documents millidegrees; the library returns °C
                temp /= 1000.0
        clk = getattr(smi, "AmdSmiClkType", None)
        gfx = mem = None
        if clk is not None:
            gfx = self._clock_mhz(smi, getattr(clk, "GFX", None))
            mem = self._clock_mhz(smi, getattr(clk, "MEM", None))
        return PowerSample(
            t_s=t_s,
            power_w=power_w,
            energy_j=energy_j,
            sm_clock_mhz=gfx,
            mem_clock_mhz=mem,
            temperature_c=temp,
            power_limit_w=self._power_limit_w(),
        )

    def _clock_mhz(self, smi: Any, clk_type: Any) -> float | None:
        if clk_type is None:
            return None
        d = self._opt(lambda: smi.amdsmi_get_clock_info(self._handle, clk_type))
        return _valid_number(d.get("clk")) if isinstance(d, dict) else None

    def _power_limit_w(self) -> float | None:
        """The power cap. amdsmi has reported it in W and (raw hwmon ``power1_cap``) in µW across
        versions; no accelerator has a 100 kW cap, so larger values are taken as µW."""
        info = self._opt(lambda: self._smi.amdsmi_get_power_info(self._handle))
        value = _valid_number(info.get("power_limit")) if isinstance(info, dict) else None
        if value is None:
            return None
        return value / 1e6 if value > 100_000 else value

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "scope": self.scope, "index": self.index, "library": "amdsmi"}
        if self._handle is None:
            d["open"] = False
            return d
        d.update(self._info)
        d.update(
            {
                "matched_by": self.matched_by,
                "power_limit_w": self._power_limit_w(),
                "energy_counter": self._has_counter,
                "energy_source": self.energy_source if self._has_counter else None,
                "energy_counter_note": self.counter_note,
                "counter_resolution_uj": self.counter_resolution_uj,
                "counter_wraps": self.counter_wraps,
                "counter_backward_steps": self.counter_backward_steps,
                "power_source": self.power_source,
            }
        )
        return d


def make_reader(index: int, info: dict[str, Any]) -> AmdSmiReader:
    """The registry's factory: refuses devices that are not AMD or Hygon (by ``vendor``)."""
    vendor = str(info.get("vendor") or "").lower()
    if vendor and vendor not in ("amd", "hygon"):
        raise PowerError(f"amdsmi: not an AMD or Hygon device (vendor {vendor!r})")
    return AmdSmiReader(index, uuid=info.get("uuid") or None, pci_bus_id=info.get("pci_bus_id") or None, vendor=vendor or None)
