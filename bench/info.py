"""`bench info`: what this host offers the harness — backends, devices, power sources — and why
the others are not usable (the reason each backend or power reader gave)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class BackendInfo:
    name: str
    available: bool
    reason: str | None = None
    devices: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Info:
    version: str
    host: dict[str, Any]
    backends: list[BackendInfo]
    #: device power readers ("<backend>:<index>" -> the reader's describe(), or why none opened)
    power: dict[str, dict[str, Any]]
    detected: str


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("icb-bench")
    except metadata.PackageNotFoundError:  # a checkout run without installing
        return "0+unknown"


def _device(be: Any, i: int) -> dict[str, Any]:
    d = be.device_info(i)
    info = asdict(d) if hasattr(d, "__dataclass_fields__") else dict(d)
    try:
        free, total = be.memory_info(i)
        info["memory_free_bytes"], info["memory_total_bytes"] = free, total
    except Exception as exc:  # noqa: BLE001 - a device that will not say still gets listed
        info["memory_error"] = f"{type(exc).__name__}: {exc}"
    try:
        info["dtypes"] = list(be.supported_dtypes(i))
    except Exception as exc:  # noqa: BLE001
        info["dtypes_error"] = f"{type(exc).__name__}: {exc}"
    return info


def gather(with_power: bool = True) -> Info:
    """Probe every registered backend (imports torch) and, for each device found, its power reader."""
    from icb_bench.kernels.backends import backend_names, detect_backend, get_backend
    from icb_bench.kernels.errors import BackendUnavailable

    from .inventory import host_info

    backends = []
    power: dict[str, dict[str, Any]] = {}
    for name in backend_names():
        try:
            be = get_backend(name)
            n = be.device_count()
        except BackendUnavailable as exc:
            backends.append(BackendInfo(name, False, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not hide the others
            backends.append(BackendInfo(name, False, f"{type(exc).__name__}: {exc}"))
            continue
        devs = [_device(be, i) for i in range(n)]
        backends.append(BackendInfo(name, True, None if n else "no device", devs))
        if with_power:
            from .power import reader_for

            for i, d in enumerate(devs):
                reader = reader_for(name, i, {k: d.get(k) for k in ("uuid", "pci_bus_id", "vendor")})
                try:
                    power[f"{name}:{i}"] = reader.describe()
                finally:
                    reader.close()
    return Info(version(), host_info(), backends, power, detect_backend())


def to_dict(info: Info) -> dict[str, Any]:
    return {"schema": "icb-bench/info/1", **asdict(info)}


def to_text(info: Info) -> str:
    import io

    from rich.console import Console
    from rich.table import Table

    c = Console(file=io.StringIO(), width=160, color_system=None)
    h = info.host
    c.print(f"icb-bench {info.version} · {h.get('hostname')} · {h.get('os')} · {h.get('cpu_model')} ×{h.get('cpu_count')} · "
            f"Python {h.get('python')} · torch {(h.get('torch_build') or {}).get('version')}")
    t = Table(title=f"backends (detected: {info.detected})")
    for col in ("backend", "usable", "devices", "why not / note"):
        t.add_column(col, overflow="fold")
    for b in info.backends:
        models = ", ".join(f"{i}: {d.get('model')}" for i, d in enumerate(b.devices)) or "—"
        t.add_row(b.name, "yes" if b.available else "no", models, b.reason or "")
    c.print(t)
    if info.power:
        p = Table(title="power sources (device scope)")
        for col in ("device", "reader", "measured", "reads / why not"):
            p.add_column(col, overflow="fold")
        for dev, d in info.power.items():
            ok = d.get("measured", True) is not False
            what = d.get("power_source") or d.get("energy_source") or d.get("method") or ""
            p.add_row(dev, str(d.get("name")), "yes" if ok else "no", str(what if ok else d.get("reason") or d.get("note")))
        c.print(p)
    c.print("node/rack sources: --node-power redfish+https://… (BMC) or a site file (`bench run --site`: Redfish, SNMP PDUs, DCMI, meter logs)")
    return c.file.getvalue()  # type: ignore[attr-defined]
