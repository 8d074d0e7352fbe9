"""Power readers and the registry that picks one per backend device.

Callers only ever call :func:`reader_for`; which vendor library is tried for which backend is the
data in :data:`READERS_FOR_BACKEND`. When no listed reader opens, a :class:`NullReader` carrying
the reasons is returned, so figures say "not measured" and why -- never zero.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from .base import PowerError, PowerReader, PowerSample, WindowEnergy
from .null import NullReader
from .sampler import EnergyWindow, Sampler, integrate_power, measure_window
from .vendor_smi import TOOL_SPECS

#: reader names tried in order for each backend (``Backend.name``). Every family that presents
#: torch.cuda reports backend "cuda": NVML takes NVIDIA parts, amdsmi AMD and Hygon (energy
#: counter), then the domestic vendors' CLI tools (hy-smi for a Hygon DCU amdsmi cannot read,
#: mx-smi MetaX, ixsmi Iluvatar, xpu-smi Kunlunxin). Ascend (npu), Cambricon (mlu) and Moore
#: Threads (musa) are polled through their CLI tools (no energy counter). Intel (xpu): none yet.
READERS_FOR_BACKEND: dict[str, list[str]] = {
    "cuda": ["nvml", "amdsmi", "hy-smi", "mx-smi", "ixsmi", "xpu-smi"],
    "cpu": ["rapl"],
    "npu": ["npu-smi"],
    "mlu": ["cnmon"],
    "musa": ["mthreads-gmi"],
    "xpu": [],
}



def _info_dict(device_info: Any) -> dict[str, Any]:
    if device_info is None:
        return {}
    if dataclasses.is_dataclass(device_info) and not isinstance(device_info, type):
        return dataclasses.asdict(device_info)
    return dict(device_info)


def _make_nvml(index: int, info: dict[str, Any]) -> PowerReader:
    from .nvml import NvmlReader

    vendor = str(info.get("vendor") or "").lower()
    if vendor and "nvidia" not in vendor:
        raise PowerError(f"NVML: not an NVIDIA device (vendor {vendor!r})")
    return NvmlReader(index, uuid=info.get("uuid") or None, pci_bus_id=info.get("pci_bus_id") or None)


def _make_rapl(index: int, info: dict[str, Any]) -> PowerReader:
    from . import rapl

    return rapl.RaplReader(rapl.DEFAULT_ROOT, scope="device")


def _make_amdsmi(index: int, info: dict[str, Any]) -> PowerReader:
    from .amdsmi import make_reader

    return make_reader(index, info)


def _make_npu_smi(index: int, info: dict[str, Any]) -> PowerReader:
    from .smi import make_npu_smi_reader

    return make_npu_smi_reader(index, info)


def _make_cnmon(index: int, info: dict[str, Any]) -> PowerReader:
    from .smi import make_cnmon_reader

    return make_cnmon_reader(index, info)


def _make_vendor_tool(name: str) -> Callable[[int, dict[str, Any]], PowerReader]:
    def make(index: int, info: dict[str, Any]) -> PowerReader:
        from .vendor_smi import make_vendor_reader

        return make_vendor_reader(name, index, info)

    return make


#: how to build each reader named in READERS_FOR_BACKEND: (device index, device info) -> reader
READER_FACTORIES: dict[str, Callable[[int, dict[str, Any]], PowerReader]] = {
    "nvml": _make_nvml,
    "rapl": _make_rapl,
    "amdsmi": _make_amdsmi,
    "npu-smi": _make_npu_smi,
    "cnmon": _make_cnmon,
    **{name: _make_vendor_tool(name) for name in TOOL_SPECS},
}
#: readers that serve only some vendors: skipped, without a reason, for a device of another vendor
READER_VENDORS: dict[str, frozenset[str]] = {name: spec.vendors for name, spec in TOOL_SPECS.items()}


def reader_for(backend_name: str, device_index: int, device_info: Any = None) -> PowerReader:
    """An opened reader for one device of a backend, or a :class:`NullReader` with the reason.

    ``device_info`` (a dict or a ``DeviceInfo``) lets the reader match the device by ``uuid`` /
    ``pci_bus_id`` rather than by index. Never raises for a missing or failing power source.
    """
    info = _info_dict(device_info)
    names = READERS_FOR_BACKEND.get(backend_name)
    if names is None:
        return NullReader("device", reason=f"no power reader registered for backend {backend_name!r}")
    if not names:
        return NullReader("device", reason=f"no power reader implemented for backend {backend_name!r}")
    reasons: list[str] = []
    vendor = str(info.get("vendor") or "").lower()
    for name in names:
        served = READER_VENDORS.get(name)
        if vendor and served is not None and vendor not in served:
            continue
        factory = READER_FACTORIES.get(name)
        if factory is None:
            reasons.append(f"{name}: unknown reader")
            continue
        try:
            reader = factory(device_index, info)
            reader.open()
            return reader
        except PowerError as e:
            reasons.append(str(e))
        except Exception as e:  # noqa: BLE001 - a broken reader must not stop the benchmark
            reasons.append(f"{name}: unexpected {type(e).__name__}: {e}")
    return NullReader("device", reason="; ".join(reasons))


__all__ = [
    "READERS_FOR_BACKEND",
    "READER_FACTORIES",
    "READER_VENDORS",
    "EnergyWindow",
    "NullReader",
    "PowerError",
    "PowerReader",
    "PowerSample",
    "Sampler",
    "WindowEnergy",
    "integrate_power",
    "measure_window",
    "reader_for",
]


#: environment variables holding the BMC/PDU password (never a command-line argument)
PASSWORD_ENV = ("ICB_NODE_POWER_PASSWORD", "ICB_REDFISH_PASSWORD")
#: query parameters a scope-reader URL may carry, with their types
def _finite_nonneg(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(text)
    return value


_SCOPE_PARAMS: dict[str, Callable[[str], Any]] = {
    "delay_s": _finite_nonneg,
    "expected_window_s": _finite_nonneg,
    "timeout_s": _finite_nonneg,
    "insecure": lambda v: v.lower() in ("1", "true", "yes"),
    "auth": str,
    "ca_file": str,
}


def scope_reader(spec: str, scope: str = "node", env: dict[str, str] | None = None) -> PowerReader:
    """An opened node- or rack-scope reader from a URL such as
    ``redfish+https://admin@bmc-01/redfish/v1/Chassis/1/Power?delay_s=7.5``.

    The password comes from ``$ICB_NODE_POWER_PASSWORD`` (or ``$ICB_REDFISH_PASSWORD``); a
    password in the URL is refused. Raises :class:`PowerError` naming what is wrong (the caller
    reports it as an input error): unlike a device's reader, a source the user named must work.
    """
    import os
    from urllib.parse import parse_qsl, urlsplit, urlunsplit

    env = dict(os.environ) if env is None else env
    try:
        parts = urlsplit(spec)
        parts.port  # noqa: B018 - parses the port, which raises on a bad one
    except ValueError as exc:
        raise PowerError(f"{spec!r} is not a URL ({exc})") from None
    kind, _, transport = parts.scheme.partition("+")
    if kind != "redfish" or transport not in ("http", "https"):
        raise PowerError(f"{spec!r}: expected redfish+https://[user@]host[:port][/redfish/v1/...] (the only {scope}-scope source so far)")
    if parts.password is not None:
        raise PowerError(f"{scope} power URL: put the password in ${PASSWORD_ENV[0]}, not in the URL")
    kw: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        conv = _SCOPE_PARAMS.get(key)
        if conv is None:
            raise PowerError(f"{scope} power URL: unknown parameter {key!r}; expected one of {', '.join(_SCOPE_PARAMS)}")
        try:
            kw[key] = conv(value)
        except ValueError:
            raise PowerError(f"{scope} power URL: {key}={value!r} is not a finite, non-negative number") from None
    insecure = kw.pop("insecure", False)
    password = next((env[k] for k in PASSWORD_ENV if env.get(k)), None)
    from .redfish import RedfishReader

    base = urlunsplit((transport, parts.netloc, parts.path, "", ""))
    try:
        reader = RedfishReader(base, password=password, scope=scope, verify_tls=not insecure, **kw)
    except ValueError as exc:
        raise PowerError(f"{scope} power URL: {exc}") from None
    reader.open()
    return reader
