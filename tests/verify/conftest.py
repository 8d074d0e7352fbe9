"""Shared builders for verify tests: declarations as dicts and well-formed `bench run` records."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from icb_bench.bench.record import RecordWriter, write_measurement

EXAMPLE = Path("/work/shared/spec/declaration.example.yaml")
_HERE = Path(__file__).parent

# A copy of the shared example lives beside the tests so that they do not depend on /work/shared.
EXAMPLE_COPY = _HERE / "data" / "declaration.example.yaml"


def example_dict() -> dict[str, Any]:
    """The example declaration as parsed YAML (a fresh deep copy each call)."""
    return copy.deepcopy(_EXAMPLE_DATA)


#: racks in use for tests whose few rack figures must be enough (level 1: ⌈20/10⌉ = 2 rack figures)
FEW_RACKS = 20


def few_racks_dict() -> dict[str, Any]:
    """The example declaration with 20 racks in use, so that two or three rack figures meet the rack rule."""
    data = example_dict()
    data["technical"]["racks_in_use"] = FEW_RACKS
    return data


_EXAMPLE_DATA = yaml.safe_load(EXAMPLE_COPY.read_text(encoding="utf-8"))


def measurement(
    host: str = "node01",
    device: int = 0,
    model: str = "NVIDIA H100 80GB HBM3",
    tflops: float = 700.0,
    *,
    dtype: str = "fp16",
    grade: str = "assessment",
    valid: bool = True,
    peak: float | None = 989.0,
    domestic: bool = False,
    vendor: str = "NVIDIA",
    spread: float = 5.0,
    power_w: float | None = 650.0,
    power_scope: str = "device",
    uuid: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A fake but well-formed measurement dict (fields as results/README.md documents)."""
    stats = {
        "n": 60,
        "median": tflops,
        "q1": tflops - spread,
        "q3": tflops + spread,
        "iqr": 2 * spread,
        "mean": tflops,
        "stdev": spread,
        "cv": spread / tflops if tflops else 0,
        "min": tflops - 3 * spread,
        "max": tflops + 3 * spread,
    }
    m = {
        "id": f"{host}-d{device}-{dtype}",
        "seq": 0,
        "host": host,
        "device": device,
        "backend": "cuda",
        "device_info": {
            "model": model,
            "vendor": vendor,
            "domestic": domestic,
            "uuid": uuid or f"GPU-{host}-{device}",
            "serial": None,
        },
        "dtype": dtype,
        "dtype_spec": {"inputs": dtype, "accumulate": "fp32", "output": dtype},
        "m": 8192,
        "n": 8192,
        "k": 8192,
        "flops_per_gemm": 2 * 8192**3,
        "grade": grade,
        "core_phase_s": 120.0 if grade == "assessment" else 5.0,
        "valid": valid,
        "status": "ok" if valid else "invalid",
        "tflops": tflops,
        "tflops_stats": stats,
        "power_w": power_w,
        "energy_j": power_w * 120 if power_w else None,
        "gflops_per_w": tflops * 1000 / power_w if power_w else None,
        "power_scope": power_scope,
        "power_method": "counter",
        "peak": None if peak is None else {"tflops": peak, "source": "test datasheet", "kind": "datasheet"},
        "fraction_of_peak": tflops / peak if peak else None,
    }
    m.update(extra)
    return m


def write_run(
    path: Path,
    measurements: list[dict[str, Any]],
    aggregates: list[dict[str, Any]] | None = None,
    run_id: str | None = None,
    status: str = "complete",
    **manifest: Any,
) -> Path:
    """A record directory written through the record module (closed with ``status``)."""
    w = RecordWriter(path, {"run_id": run_id or path.name, "host": {"hostname": "node01"}, "aggregates": aggregates or [],
                            **manifest})
    w.start()
    for m in measurements:
        write_measurement(path, m)
    if status != "running":
        w.finish(status)
    return path


PHASE_S, T0_S, BATCHES, ITERS = 120.0, 1000.0, 12, 10


def fleet_measurement(host: str, device: int, model: str = "NVIDIA H100 80GB HBM3", tflops: float = 700.0,
                      **kw: Any) -> dict[str, Any]:
    """A measurement with what a rack figure is checked against: batch times, FLOPs, its core window."""
    total = tflops * 1e12 * PHASE_S
    return measurement(host, device, model, tflops, core_phase_s=PHASE_S,
                       core_window={"t_begin_s": T0_S, "t_end_s": T0_S + PHASE_S, "clock": "monotonic"},
                       samples={"batch_time_ms": [PHASE_S * 1000 / BATCHES] * BATCHES, "iters_per_batch": ITERS},
                       flops_per_gemm=total / (ITERS * BATCHES), flops_total=total, **kw)


@dataclass
class RackSpec:
    """One rack of a synthetic fleet record: ``nodes`` nodes of ``devices`` devices each."""

    gflops_per_w: float | None
    devices: int = 2
    nodes: int = 1
    model: str = "NVIDIA H100 80GB HBM3"
    tflops: Callable[[int], float] = lambda i: 700.0 + i  # by device number within the rack
    measurement: dict[str, Any] = field(default_factory=dict)  # extra measurement fields
    agg: dict[str, Any] = field(default_factory=dict)  # rack_aggregate() keywords
    override: dict[str, Any] = field(default_factory=dict)  # aggregate keys set last (to break a check)


def _rack_node_names(rack: str, spec: RackSpec) -> list[str]:
    return [f"n-{rack}"] if spec.nodes == 1 else [f"n-{rack}-{k}" for k in range(spec.nodes)]


#: rank 0's clock when the load started (its meters' earlier readings are the idle reading)
LOAD_S = T0_S - 10.0
#: best round trip of every node's clock offset (± 0.5 ms)
RTT_S = 0.001


def meter_rows(source_id: str, power_w: float, t_from_s: float = LOAD_S - 3.0, t_to_s: float = T0_S + PHASE_S + 5.0,
               hz: float = 2.0) -> list[dict[str, Any]]:
    """A polled meter's readings as the run writes them: instantaneous, at ``hz``, alternating
    ``power_w`` ± 1 W (a steady value is refused as frozen) so the window's mean is ``power_w``."""
    rows, k = [], 0
    while (t := t_from_s + (k + 0.5) / hz) <= t_to_s:
        rows.append({"source_id": source_id, "t_begin_s": t, "t_end_s": t, "power_w": power_w + (1.0 if k % 2 else -1.0),
                     "energy_j": None, "ok": True, "error": None, "source_time": None})
        k += 1
    return rows


def write_readings(path: Path, rows: list[dict[str, Any]], rel: str = "power/readings.parquet") -> str:
    """Every source's readings in one Parquet file, as ``bench/fleet_power.py`` writes them."""
    import pandas as pd

    (path / rel).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path / rel, index=False)
    return rel


def write_fleet(path: Path, racks: dict[str, RackSpec], *, rack_in_manifest: bool = True, run_id: str = "fleet",
                node_status: dict[str, str] | None = None, clock: dict[str, dict[str, Any]] | None = None,
                power_w: dict[str, float] | None = None) -> Path:
    """A fleet record whose rack aggregates agree with its node shards, traces and file index
    (what `bench verify` checks), as `bench run` on several nodes writes it: every meter polled at
    2 Hz into ``power/readings.parquet``, its mean over the window the figure's power. ``clock``:
    a node's ``clock`` entry instead of offset 0 ± RTT_S/2; ``power_w``: a source's readings at
    another power than the figure's (an edited trace)."""
    nodes, power, aggs, rows = [], [], [], []
    w = RecordWriter(path, {"run_id": run_id, "kind": "fleet", "nodes": [], "aggregates": []})
    w.start()
    for rack, spec in racks.items():
        names = _rack_node_names(rack, spec)
        flops = 0.0
        for k, node in enumerate(names):
            ms = [fleet_measurement(node, i, spec.model, spec.tflops(k * spec.devices + i), **spec.measurement)
                  for i in range(spec.devices)]
            flops += sum(m["flops_total"] for m in ms)
            inv = [{"index": i, "model": spec.model} for i in range(spec.devices)]
            write_run(path / "nodes" / node, ms, run_id=node, status=(node_status or {}).get(node, "complete"),
                      inventory=inv, plan={"devices": list(range(spec.devices))})
            nodes.append({"name": node, "rank": len(nodes), "shard": f"nodes/{node}", "devices": spec.devices,
                          "clock": (clock or {}).get(node, {"offset_s": 0.0, "rtt_s": RTT_S, "rounds": 8}),
                          **({"rack": rack} if rack_in_manifest else {})})
        agg = rack_aggregate(rack, spec.gflops_per_w, devices=spec.devices * spec.nodes, nodes=names, **spec.agg)
        scope = agg["power_scope"]
        sources = [f"pdu-{rack}-0"] if scope != "node" else [f"bmc-{n}" for n in names]
        agg.update(t_begin_s=T0_S, t_end_s=T0_S + PHASE_S, window_s=PHASE_S, flops=flops, tflops=flops / PHASE_S / 1e12,
                   power_sources=sources)
        if spec.gflops_per_w is not None:
            energy = flops / 1e9 / spec.gflops_per_w
            agg.update(energy_j=energy, power_w=energy / PHASE_S)
        for sid in sources:
            rows += meter_rows(sid, (power_w or {}).get(sid, agg["power_w"] / len(sources)))
            power.append({"source_id": sid, "scope": "node" if scope == "node" else "rack", "rack": rack,
                          "node": sid[4:] if scope == "node" else None, "kind": "redfish",
                          "trace_file": "power/readings.parquet", "reader": {}})
        agg.update(spec.override)
        aggs.append(agg)
    if rows:
        write_readings(path, rows)
    w.update(nodes=nodes, power=power, aggregates=aggs, timeline={"epoch_s": 1.7e9, "monotonic_s": T0_S - 20.0,
                                                                  "load_s": LOAD_S})
    w.finish("complete")
    return path


def site_of(racks: dict[str, RackSpec], extra_nodes: dict[str, list[str]] | None = None) -> Any:
    """The site file (``bench.site.Site``) of ``write_fleet(racks)``'s racks; ``extra_nodes``: nodes
    of a rack that the site file lists and the record does not hold."""
    from icb_bench.bench.site import parse_site

    return parse_site({"schema": "icb-bench/site/1", "site": "test-site", "racks": [
        {"name": rack, "nodes": [{"name": n, "devices": {"model": spec.model, "count": spec.devices}}
                                 for n in _rack_node_names(rack, spec) + (extra_nodes or {}).get(rack, [])]}
        for rack, spec in racks.items()]})


def rack_aggregate(rack_id: str, gflops_per_w: float | None, *, grade: str = "assessment", devices: int = 32, dtype: str = "fp16",
                   scope: str = "rack", power_scope: str | None = None, assurance: str | None = "rack-meter",
                   uncertainty_rel: float | None = 0.01, status: str = "ok", reason: str | None = None,
                   nodes: list[str] | None = None) -> dict[str, Any]:
    """A rack aggregate in the fleet contract's format (``uncertainty_rel=None``: no bounds stated)."""
    power = 40000.0
    agg: dict[str, Any] = {
        "scope": scope,
        "rack_id": rack_id,
        "dtype": dtype,
        "nodes": nodes or [],
        "devices": devices,
        "devices_expected": devices,
        "devices_valid": devices,
        "window_s": 120.0,
        "tflops": None if gflops_per_w is None else gflops_per_w * power / 1000,
        "power_w": power,
        "energy_j": power * 120,
        "gflops_per_w": gflops_per_w,
        "power_scope": power_scope or scope,
        "power_method": "polled",
        "status": status,
        "reason": reason,
        "grade": grade,
        "valid": status == "ok",
    }
    if assurance is not None:
        agg["assurance"] = assurance
    if uncertainty_rel is not None and gflops_per_w is not None:
        agg.update(uncertainty_rel=uncertainty_rel, gflops_per_w_low=gflops_per_w * (1 - uncertainty_rel),
                   gflops_per_w_high=gflops_per_w * (1 + uncertainty_rel))
    return agg


H100 = "NVIDIA H100 80GB HBM3"  # what the driver reports for the SXM part
ASCEND = "Ascend910B3"
#: devices the example declaration's inventory needs measured at level 1 (⌈300/10⌉, ⌈2600/10⌉)
N_H100, N_ASCEND = 30, 260


def site_measurements(h100: float = 700.0, ascend: float = 260.0, n_h100: int = N_H100, n_ascend: int = N_ASCEND,
                      **extra: Any) -> list[dict[str, Any]]:
    """Enough devices of both example models for the level-1 rule; throughput varies by 0–2 TFLOPS."""
    ms = [measurement("g", i, H100, h100 + (i % 3), **extra) for i in range(n_h100)]
    ms += [measurement("a", i, ASCEND, ascend + (i % 3), peak=313.0, domestic=True, vendor="Huawei", **extra)
           for i in range(n_ascend)]
    return ms


@pytest.fixture
def example() -> dict[str, Any]:
    return example_dict()


def write_decl(tmp_path: Path, data: dict[str, Any], name: str = "decl.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return p


def site_data_for(records: list[Any]) -> dict[str, Any]:
    """The site file (as data) whose racks are exactly the rack figures' node lists of fleet
    ``records`` — what an assessor's site file says when the records hold whole racks."""
    racks: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        if rec.kind != "fleet":
            continue
        entries = {n["name"]: n for n in rec.manifest.get("nodes") or []}
        models = {p.manifest.get("run_id"): (p.measurements or [{}])[0].get("device_info", {}).get("model", H100)
                  for p in rec.parts}
        for agg in rec.manifest.get("aggregates") or []:
            if agg.get("scope") == "rack" and agg.get("rack_id") not in racks:
                racks[agg["rack_id"]] = [{"name": n, "devices": {"model": models.get(n, H100),
                                                                  "count": entries[n]["devices"]}}
                                         for n in agg["nodes"] if n in entries]
    return {"schema": "icb-bench/site/1", "site": "test-site",
            "racks": [{"name": r, "nodes": nodes} for r, nodes in racks.items() if nodes]}


def site_for(records: list[Any]) -> Any:
    """:func:`site_data_for` as a parsed ``bench.site.Site`` (``verify(..., site_file=…)``)."""
    from icb_bench.bench.site import parse_site

    return parse_site(site_data_for(records))


def write_site_for(records: list[Any], path: Path) -> Path:
    """:func:`site_data_for` as a site file (``bench verify --site PATH``)."""
    path.write_text(yaml.safe_dump(site_data_for(records), sort_keys=False), encoding="utf-8")
    return path


def verify_with_site(decl: Any, records: Any, **kw: Any) -> Any:
    """``verify`` as an assessor runs it: with the site file of the records' own racks (``site_for``)."""
    from icb_bench.verify.measured import verify

    records = list(records)
    return verify(decl, records, site_file=site_for(records), **kw)
