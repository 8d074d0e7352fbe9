"""`bench export compute-info`: the specification's 基地算力信息 (base compute information) as JSON.

The field list is the specification's, in its order: the A3 数据接入要求 table, row 接入数据类型 ·
基地算力信息, "参照评估规范附录C" (shared/spec/000_3855c73ea94537b5.txt; shared/spec/scoring.md,
"Compute information (基地算力信息) fields"). A3.4 asks the base's cloud-management platform
(云管平台) to push it daily in one of 07:00–08:00, 12:00–13:00 or 19:00–20:00 and on request; this
export is what a harness can contribute to that push. Every field is present, keyed by its
Chinese name, with its unit, where its value came from and whether it is estimated; fields a
harness cannot observe (network, storage) are ``null`` with the reason, never a guess.

Sources, best first: the site file (the whole inventory), the run records (measured per-device
FP16/FP32 throughput, hosts and CPU counts of the measured nodes), and this host live (memory,
CPU load, NVML utilisation where an NVIDIA driver is present).
"""

from __future__ import annotations

import os
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import record

SCHEMA = "icb-bench/compute-info/1"
SPEC_REF = ("《国家工业互联网大数据中心工业智算基地评估规范》附录C；解读材料 A3 数据接入要求 · 接入数据类型 · 基地算力信息 "
            "(shared/spec/000_3855c73ea94537b5.txt)")
PUSH_WINDOWS = ("07:00-08:00", "12:00-13:00", "19:00-20:00")
#: a device at or below this utilisation counts as idle (live NVML reading)
IDLE_UTILISATION = 0.05

#: device class by model name (regular expressions, first match): NPU-class AI accelerators, else GPU.
#: Interpretation: Cambricon MLU and Kunlunxin XPU are AI accelerators without graphics, counted as NPU.
NPU_PATTERNS = (r"ascend", r"\bnpu\b", r"\bmlu", r"cambricon", r"kunlun")
#: backend name -> device class (records and live devices carry the backend)
BACKEND_CLASS = {"cuda": "GPU", "musa": "GPU", "xpu": "GPU", "npu": "NPU", "mlu": "NPU", "cpu": "CPU"}


class ExportError(Exception):
    """Bad input to the export (exit 2)."""


def device_class(model: str, backend: str | None = None) -> str:
    import re

    if backend in BACKEND_CLASS:
        return BACKEND_CLASS[backend]
    return "NPU" if any(re.search(p, model, re.IGNORECASE) for p in NPU_PATTERNS) else "GPU"


@dataclass
class Inventory:
    """What is known about the base: servers by class, devices by model, CPU cores, live readings."""

    servers: dict[str, set[str]] = field(default_factory=lambda: {"CPU": set(), "GPU": set(), "NPU": set()})
    devices: Counter = field(default_factory=Counter)  # (class, model) -> count
    cpu_cores: dict[str, int] = field(default_factory=dict)  # host -> logical CPUs
    measured: dict[tuple[str, str], float] = field(default_factory=dict)  # (model key, dtype) -> median TFLOPS
    sources: list[str] = field(default_factory=list)
    live: "Live | None" = None
    all_hosts: set[str] = field(default_factory=set)
    #: per-device figures multiplied over devices that were not measured (site inventory)
    extrapolated: bool = False


@dataclass
class Live:
    """This host, now."""

    host: str
    cpu_count: int
    load_1m: float | None
    mem_total_bytes: int | None
    mem_free_bytes: int | None
    #: (model, utilisation 0..1) of each NVML device
    gpus: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _model_key(model: str) -> str:
    from icb_bench.kernels.peaks import match_model

    return match_model(model) or model.strip().lower()


def from_site(inv: Inventory, site: Any) -> None:
    inv.sources.append(f"site file {site.site} (sha256 {site.sha256})")
    for rack in site.racks:
        for node in rack.nodes:
            cls = device_class(node.devices.model)
            inv.servers[cls].add(node.name)
            inv.all_hosts.add(node.name)
            inv.devices[(cls, node.devices.model)] += node.devices.count


def from_records(inv: Inventory, records: list[record.RunRecord], devices_too: bool) -> None:
    """Measured per-device throughput; hosts, CPUs and devices too when no site file gives them."""
    per: dict[tuple[str, str], list[float]] = {}
    from .reportdoc.evidence import leaves

    for rec in records:
        inv.sources.append(f"run record {rec.run_id}")
        for leaf in leaves(rec):
            host = leaf.manifest.get("host") or {}
            name = str(host.get("hostname") or leaf.run_id)
            if isinstance(host.get("cpu_count"), int):
                inv.cpu_cores[name] = host["cpu_count"]
            if devices_too:
                inv.all_hosts.add(name)
                seen = {(str(m.get("host")), m.get("device")): m for m in leaf.measurements}
                for m in seen.values():
                    model = str((m.get("device_info") or {}).get("model") or "?")
                    cls = device_class(model, m.get("backend"))
                    inv.servers[cls].add(name)
                    if cls != "CPU":
                        inv.devices[(cls, model)] += 1
            for m in leaf.measurements:
                if m.get("status", "ok") == "ok" and m.get("valid") is not False and isinstance(m.get("tflops"), (int, float)):
                    model = str((m.get("device_info") or {}).get("model") or "?")
                    per.setdefault((_model_key(model), str(m.get("dtype"))), []).append(float(m["tflops"]))
    inv.measured = {k: statistics.median(v) for k, v in per.items()}


def probe_live() -> Live:
    """Memory, CPU load and NVML utilisation of this host (each where the OS or driver offers it)."""
    from .inventory import hostname

    live = Live(hostname(), os.cpu_count() or 0, None, None, None)
    try:
        live.load_1m = os.getloadavg()[0]
    except OSError:
        live.notes.append("no load average on this OS")
    try:
        info = {}
        with open("/proc/meminfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
        live.mem_total_bytes, live.mem_free_bytes = info.get("MemTotal"), info.get("MemAvailable")
    except (OSError, ValueError, IndexError):
        live.notes.append("no /proc/meminfo")
    try:
        import pynvml  # nvidia-ml-py: lazily, only here

        pynvml.nvmlInit()
        try:
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                name = pynvml.nvmlDeviceGetName(h)
                util = pynvml.nvmlDeviceGetUtilizationRates(h).gpu / 100.0
                live.gpus.append((name.decode() if isinstance(name, bytes) else str(name), util))
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:  # noqa: BLE001 - no driver is an ordinary state: say so, go on
        live.notes.append(f"no NVML utilisation ({type(exc).__name__})")
    return live


def from_live(inv: Inventory, live: Live, devices_too: bool) -> None:
    inv.live = live
    inv.sources.append(f"live: host {live.host}")
    inv.cpu_cores.setdefault(live.host, live.cpu_count)
    if devices_too:
        inv.all_hosts.add(live.host)
        inv.servers["GPU" if live.gpus else "CPU"].add(live.host)
        for model, _ in live.gpus:
            inv.devices[("GPU", model)] += 1


# ------------------------------------------------------------------------------ the fields


def _f(value: Any, unit: str, source: str, estimated: bool = False, note: str | None = None) -> dict[str, Any]:
    return {"value": value, "unit": unit, "source": source, "estimated": estimated, "note": note}


def _unknown(unit: str, why: str) -> dict[str, Any]:
    return _f(None, unit, "not-known", False, why)


_NOT_OBSERVED = "not observable by a compute benchmark; the cloud-management platform fills it"


def _cores(inv: Inventory) -> dict[str, Any]:
    if not inv.cpu_cores:
        return _unknown("核", "no CPU count known (the site file holds none; give run records or run on the host)")
    partial = bool(inv.all_hosts - set(inv.cpu_cores))
    note = f"logical CPUs of {len(inv.cpu_cores)} host(s)" + (f" of {len(inv.all_hosts)} known" if partial else "")
    return _f(sum(inv.cpu_cores.values()), "核", "record/live", bool(partial), note)


def _idle_cores(inv: Inventory) -> dict[str, Any]:
    lv = inv.live
    if lv is None or lv.load_1m is None:
        return _unknown("核", "needs live utilisation (run on the host, without RUN)")
    return _f(max(0, round(lv.cpu_count - lv.load_1m)), "核", "live", True,
              f"host {lv.host}: logical CPUs − 1-minute load average")


def _memory(inv: Inventory, attr: str) -> dict[str, Any]:
    lv = inv.live
    v = getattr(lv, attr) if lv else None
    if v is None:
        return _unknown("GiB", "host memory is read live only (run on the host, without RUN)")
    return _f(round(v / 2**30, 2), "GiB", "live", False, f"host {lv.host} (/proc/meminfo {'MemTotal' if 'total' in attr else 'MemAvailable'})")


def _servers(inv: Inventory, cls: str) -> dict[str, Any]:
    src = "site" if any(s.startswith("site") for s in inv.sources) else "record/live"
    note = None if cls != "CPU" else "servers without an accelerator seen by icb-bench (a site file lists accelerator nodes only)"
    return _f(len(inv.servers[cls]), "台", src, False, note)


def _device_count(inv: Inventory, cls: str) -> dict[str, Any]:
    n = sum(c for (k, _), c in inv.devices.items() if k == cls)
    return _f(n, "卡", "site" if any(s.startswith("site") for s in inv.sources) else "record/live", False,
              "interpretation: 核数 counted as accelerator devices (cards)")


def _idle_devices(inv: Inventory, cls: str) -> dict[str, Any]:
    lv = inv.live
    if cls != "GPU" or lv is None or not lv.gpus:
        return _unknown("卡", "needs live utilisation of every device (NVML on this host; other devices: the platform's monitoring)")
    idle = sum(1 for _, u in lv.gpus if u <= IDLE_UTILISATION)
    return _f(idle, "卡", "live", True, f"host {lv.host}: NVML utilisation ≤ {IDLE_UTILISATION:.0%}")


def _per_device_tflops(inv: Inventory, model: str, dtype: str) -> tuple[float | None, str]:
    from icb_bench.kernels.peaks import lookup

    got = inv.measured.get((_model_key(model), dtype))
    if got is not None:
        return got, "measured"
    pk = lookup(model, dtype)
    return (pk.tflops, "nominal") if pk else (None, "unknown")


def _compute_total(inv: Inventory, dtype: str) -> dict[str, Any]:
    total, kinds, unknown = 0.0, set(), []
    for (cls, model), count in inv.devices.items():
        per, kind = _per_device_tflops(inv, model, dtype)
        if per is None:
            unknown.append(model)
            continue
        kinds.add(kind)
        total += per * count
    if not inv.devices:
        return _unknown("PFLOPS", "no accelerator known (give a site file or run records)")
    parts = []
    if "measured" in kinds:
        parts.append("measured per-device median × count")
    if "nominal" in kinds:
        parts.append("datasheet dense peak × count where a model was not measured")
    if unknown:
        parts.append("not counted (no measurement, no datasheet): " + ", ".join(sorted(unknown)))
    source = "+".join(sorted(kinds)) or "unknown"
    estimated = kinds != {"measured"} or bool(unknown) or inv.extrapolated
    return _f(round(total / 1000, 6), "PFLOPS", source, estimated,
              f"{dtype.upper()} dense GEMM; " + "; ".join(parts))


def _compute_idle(inv: Inventory, dtype: str) -> dict[str, Any]:
    lv = inv.live
    if lv is None or not lv.gpus:
        return _unknown("PFLOPS", "needs live utilisation of every device (NVML on this host; other devices: the platform's monitoring)")
    total = 0.0
    for model, util in lv.gpus:
        per, _ = _per_device_tflops(inv, model, dtype)
        if per is not None and util <= IDLE_UTILISATION:
            total += per
    return _f(round(total / 1000, 6), "PFLOPS", "live", True, f"{dtype.upper()}: idle devices of host {lv.host} × per-device figure")


#: the specification's fields in its order (Chinese name -> how a harness fills it)
FIELDS: dict[str, Callable[[Inventory], dict[str, Any]]] = {
    "上行网络带宽总量": lambda inv: _unknown("Gbps", _NOT_OBSERVED),
    "空闲上行网络带宽": lambda inv: _unknown("Gbps", _NOT_OBSERVED),
    "空闲上行网络流量": lambda inv: _unknown("GB", _NOT_OBSERVED),
    "下行网络带宽总量": lambda inv: _unknown("Gbps", _NOT_OBSERVED),
    "空闲下行网络带宽": lambda inv: _unknown("Gbps", _NOT_OBSERVED),
    "空闲下行网络流量": lambda inv: _unknown("GB", _NOT_OBSERVED),
    "内存空间总容量": lambda inv: _memory(inv, "mem_total_bytes"),
    "空闲内存空间容量": lambda inv: _memory(inv, "mem_free_bytes"),
    "存储空间总容量": lambda inv: _unknown("PB", _NOT_OBSERVED),
    "空闲存储空间容量": lambda inv: _unknown("PB", _NOT_OBSERVED),
    "CPU服务器数量": lambda inv: _servers(inv, "CPU"),
    "CPU总核数": _cores,
    "空闲CPU核数": _idle_cores,
    "GPU服务器数量": lambda inv: _servers(inv, "GPU"),
    "GPU总核数": lambda inv: _device_count(inv, "GPU"),
    "空闲GPU核数": lambda inv: _idle_devices(inv, "GPU"),
    "NPU服务器数量": lambda inv: _servers(inv, "NPU"),
    "NPU总核数": lambda inv: _device_count(inv, "NPU"),
    "空闲NPU核数": lambda inv: _idle_devices(inv, "NPU"),
    "FP16算力总量": lambda inv: _compute_total(inv, "fp16"),
    "FP16算力空闲量": lambda inv: _compute_idle(inv, "fp16"),
    "FP32算力总量": lambda inv: _compute_total(inv, "fp32"),
    "FP32算力空闲量": lambda inv: _compute_idle(inv, "fp32"),
}


@dataclass(frozen=True)
class ExportInput:
    runs: list[Path] = field(default_factory=list)
    site: Path | None = None
    #: read this host live (default: only when neither records nor a site file are given)
    live: bool | None = None


def compute_info(inp: ExportInput, probe: Callable[[], Live] = probe_live) -> dict[str, Any]:
    """The 基地算力信息 document (``schema: icb-bench/compute-info/1``)."""
    from .inventory import utc_now

    inv = Inventory()
    site = None
    if inp.site is not None:
        from .site import SiteError, load_site

        try:
            site = load_site(inp.site)
        except SiteError as exc:
            raise ExportError(f"--site: {exc.render() if len(exc.issues) > 1 else f'{exc.source}: {exc.issues[0]}'}") from None
        from_site(inv, site)
    if inp.runs:
        try:
            records = record.find_runs(inp.runs)
        except record.RecordError as exc:
            raise ExportError(str(exc)) from None
        from_records(inv, records, devices_too=site is None)
        inv.extrapolated = site is not None
    live = inp.live if inp.live is not None else (not inp.runs and site is None)
    if live:
        from_live(inv, probe(), devices_too=site is None and not inp.runs)
    return {
        "schema": SCHEMA,
        "timestamp": utc_now(),
        "spec": SPEC_REF,
        "push": {"daily_windows": list(PUSH_WINDOWS), "adhoc": "on request of the coordination command centre (特殊时间报送)",
                 "by": "the base's cloud-management platform (云管平台), A3.1/A3.4"},
        "site": site.site if site else None,
        "sources": inv.sources,
        "live_notes": inv.live.notes if inv.live else [],
        "fields": {name: fill(inv) for name, fill in FIELDS.items()},
    }
