"""Rank 0's meters: the rack PDUs and node BMCs of a site file, polled for the whole run, and the
per-rack GFLOPS/W computed from them once every node's measurements are in.

Every live source is polled by its own :class:`~icb_bench.bench.power.sampler.Sampler` thread at
:data:`POLL_HZ` (Green500 asks ≥ 1 Hz; one slow PDU must not slow another's readings), on rank 0's
clock — the same timeline the devices' core phases are mapped onto. Meter logs (sites whose PDUs
are not on the network) are read after the run and moved onto that timeline. Before any device
is loaded, every source is read for :data:`IDLE_S` seconds: the rack's idle power.

The arithmetic is :mod:`icb_bench.bench.rack`; this module only gathers its inputs and writes
every raw reading to ``power/<source>.parquet``.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import record

#: polling rate of every live rack or node meter
POLL_HZ = 2.0
#: how long the meters are read before the devices are loaded (the idle reading)
IDLE_S = 3.0
POWER_DIR = "power"


@dataclass
class MeterSource:
    """One meter of the site file, as rank 0 uses it."""

    source_id: str
    scope: str  # rack | node
    rack: str
    node: str | None
    kind: str  # redfish | snmp | dcmi | meter-log
    accuracy_rel: float | None
    spec: Any  # the site file's source model
    reader: Any = None
    sampler: Any = None
    error: str | None = None  # why it gives no readings (failed to open)
    describe: dict[str, Any] = field(default_factory=dict)


class SiteMonitor:
    """The meters of the racks under test (those holding a node of this job)."""

    def __init__(self, site: Any, site_dir: Path, node_names: list[str], plan: Any):
        self.site = site
        self.site_dir = Path(site_dir)
        index = site.node_index()
        self.node_rack = {n: index[n][0].name for n in node_names if n in index}
        self.unknown_nodes = [n for n in node_names if n not in index]
        self.racks = [r for r in site.racks if r.name in set(self.node_rack.values())]
        self.sources: list[MeterSource] = []
        for rack in self.racks:
            for i, pdu in enumerate(rack.pdus):
                self.sources.append(MeterSource(f"pdu-{rack.name}-{i}", "rack", rack.name, None, pdu.type,
                                                pdu.accuracy_rel, pdu))
            for node in rack.nodes:
                if node.bmc is not None:
                    self.sources.append(MeterSource(f"bmc-{node.name}", "node", rack.name, node.name, node.bmc.type,
                                                    node.bmc.accuracy_rel, node.bmc))
        self.t_started: float | None = None
        self.t_load: float | None = None

    def rack_of(self, node: str) -> str | None:
        return self.node_rack.get(node)

    # -- polling
    def start(self) -> None:
        """Open and poll every live source; a source that does not open is kept with its reason
        (its racks get no figure from it), so one dead PDU does not stop the run."""
        from .power import PowerError
        from .power.sampler import Sampler
        from .site import SiteError, open_reader

        for src in self.sources:
            if src.kind == "meter-log":
                continue
            try:
                reader = open_reader(src.spec, src.scope, self.site_dir)
                reader.open()
                src.reader, src.describe = reader, dict(reader.describe())
                src.sampler = Sampler(reader, hz=POLL_HZ).start()
            except (SiteError, PowerError, ValueError, OSError) as exc:
                src.error = exc.render() if isinstance(exc, SiteError) else str(exc)
        self.t_started = time.monotonic()

    def idle_reading(self) -> None:
        """Read the meters before the load (blocks :data:`IDLE_S`); marks the start of the load."""
        if any(s.sampler is not None for s in self.sources):
            time.sleep(IDLE_S)
        self.t_load = time.monotonic()

    def stop(self) -> None:
        for src in self.sources:
            if src.sampler is not None:
                src.sampler.stop()
            if src.reader is not None:
                try:
                    src.reader.close()
                except Exception:  # noqa: BLE001 - closing a dead source
                    pass

    def write_power(self, run_dir: Path, timeline: dict[str, float]) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
        """Every source's raw readings to ``power/<source>.parquet``: the manifest's ``power`` list,
        and the readings by source (so the figures need not read them back)."""
        power: list[dict[str, Any]] = []
        by_source: dict[str, list[Any]] = {}
        for src in self.sources:
            entry = {"source_id": src.source_id, "scope": src.scope, "rack": src.rack, "node": src.node,
                     "kind": src.kind, "accuracy_rel": src.accuracy_rel, "error": src.error, "trace_file": None,
                     # the rate the readings were taken at: verify judges them by it, not by today's
                     "poll_hz": POLL_HZ}
            if src.kind == "meter-log":
                # the log as it stands now, copied into the record (raw readings, the log's digest);
                # a log that arrives later is read by `bench racks RUN --site SITE`
                try:
                    readings, src.describe = _readings_of(run_dir, entry, self.site_dir, src.spec, timeline)
                except Exception as exc:  # noqa: BLE001 - no log yet, or a bad one: no figure from it
                    readings, entry["error"] = [], f"{type(exc).__name__}: {exc}"
            else:
                readings = self._polled(src)
            entry["readings"] = len(readings)
            entry["reader"] = src.describe
            power.append(entry)
            by_source[src.source_id] = readings
        rel = _write_readings(run_dir, by_source)  # one file for every source: 3,000 racks are one write
        for entry in power:
            entry["trace_file"] = rel if by_source.get(entry["source_id"]) else None
        return power, by_source

    def _polled(self, src: MeterSource) -> list[Any]:
        from .rack import Reading

        if src.sampler is None:
            return []
        readings = [Reading(s.t_s, s.t_s, s.power_w, s.energy_j, source_time=getattr(s, "source_time", None))
                    for s in src.sampler.samples()]
        readings += [Reading(e.t_s, e.t_s, ok=False, error=e.message)
                     for e in src.sampler._errors_between(0, float("-inf"), float("inf"))]
        return sorted(readings, key=lambda r: r.t_begin_s)

    def figures(self, run_dir: Path, measurements: list[dict[str, Any]], windows: list[dict[str, Any]],
                job: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The manifest's ``power`` list (one per source) and every rack's figure per dtype."""
        timeline = {**job.timeline, "load_s": self.t_load}
        power, readings = self.write_power(run_dir, timeline)
        return rack_aggregates(run_dir, self.site, self.site_dir, power, measurements, windows, timeline,
                               readings=readings), power


def _readings_of(run_dir: Path, entry: dict[str, Any], site_dir: Path, spec: Any, timeline: dict[str, float]) -> tuple[list[Any], dict[str, Any]]:
    """A source's readings on rank 0's timeline: from the record's trace, or its meter log."""
    from .rack import Reading

    if entry["kind"] == "meter-log" and not entry.get("trace_file"):
        from .power.meterlog import load_meter_log

        log = load_meter_log(site_dir / spec.path, spec.format, scope=entry["scope"], accuracy_rel=entry["accuracy_rel"],
                             tz=getattr(spec, "tz", None))
        return log.to_timeline(timeline["epoch_s"], timeline["monotonic_s"]), dict(log.describe())
    if not entry.get("trace_file"):
        return [], dict(entry.get("reader") or {})
    df = _read_power(run_dir, entry["trace_file"])
    df = df[df["source_id"] == entry["source_id"]] if "source_id" in df.columns else df
    out = []
    for row in df.itertuples(index=False):
        pw, ej = _opt_float(row.power_w), _opt_float(row.energy_j)
        out.append(Reading(float(row.t_begin_s), float(row.t_end_s), pw, ej, ok=bool(row.ok),
                           error=row.error if isinstance(row.error, str) else None,
                           source_time=row.source_time if isinstance(row.source_time, str) else None))
    return out, dict(entry.get("reader") or {})


def _opt_float(v: Any) -> float | None:
    """A trace cell as a number, or None (a missing value reads back as None or NaN)."""
    return None if v is None or v != v else float(v)


def _spec(entry: dict[str, Any], desc: dict[str, Any]) -> Any:
    from .meter_energy import meter_spec  # shared with `bench verify`, which judges the readings again

    return meter_spec(entry, desc, float(entry.get("poll_hz") or POLL_HZ))


def rack_aggregates(run_dir: Path, site: Any, site_dir: Path, power: list[dict[str, Any]],
                    measurements: list[dict[str, Any]], windows: list[dict[str, Any]],
                    timeline: dict[str, Any], readings: dict[str, list[Any]] | None = None) -> list[dict[str, Any]]:
    """Every rack's GFLOPS/W per dtype, from what the record holds (measurements, core windows on
    rank 0's timeline, the meters' traces — or ``readings`` by source, already in memory) and the
    site file (racks, nodes, meter logs)."""
    from .rack import MeterSeries, RackInput, RackInputError, device_load, rack_figure

    t_load = timeline.get("load_s")
    t_load = float("-inf") if t_load is None else float(t_load)
    specs = {}
    for rack in site.racks:
        for i, pdu in enumerate(rack.pdus):
            specs[f"pdu-{rack.name}-{i}"] = pdu
        for node in rack.nodes:
            if node.bmc is not None:
                specs[f"bmc-{node.name}"] = node.bmc
    series: dict[str, tuple[Any, Any]] = {}
    for entry in power:
        if entry["kind"] == "meter-log" and not entry.get("trace_file") and entry.get("error"):
            entry["error"] = None  # try the log again: it may have arrived since
        try:
            if readings is not None and entry["source_id"] in readings:
                got, desc = readings[entry["source_id"]], dict(entry.get("reader") or {})
            else:
                got, desc = _readings_of(run_dir, entry, site_dir, specs.get(entry["source_id"]), timeline)
        except Exception as exc:  # noqa: BLE001 - a log that does not load: no figure from that source
            entry["error"] = f"{type(exc).__name__}: {exc}"
            got, desc = [], dict(entry.get("reader") or {})
        spec = _spec(entry, desc)
        series[entry["source_id"]] = (MeterSeries(spec, [r for r in got if r.t_begin_s >= t_load]),
                                      MeterSeries(spec, [r for r in got if r.t_end_s < t_load]))
    win_of = {(w["node"], w["device"], w["dtype"]): w for w in windows}
    by_node: dict[Any, list[dict[str, Any]]] = {}
    for m in measurements:
        by_node.setdefault(m.get("host"), []).append(m)
    power_of: dict[str, list[dict[str, Any]]] = {}
    for e in power:
        power_of.setdefault(e["rack"], []).append(e)
    out: list[dict[str, Any]] = []
    dtypes = list(dict.fromkeys(m.get("dtype") for m in measurements))
    for rack in site.racks:
        nodes = [n.name for n in rack.nodes]
        if not any(n in by_node for n in nodes):
            continue
        loads = []
        for m in (m for n in nodes for m in by_node.get(n, [])):
            w = win_of.get((m.get("host"), m.get("device"), m.get("dtype")))
            if w is None:
                continue
            try:
                loads.append(device_load(m, rack=rack.name, node=str(m["host"]), t_begin_s=w["t_begin_s"],
                                         t_end_s=w["t_end_s"]))
            except RackInputError:
                continue  # batches that do not add up to the record's FLOPs: counts as not measured
        mine = power_of.get(rack.name, [])
        node_meters: dict[str, list[Any]] = {}
        for e in mine:
            if e["scope"] == "node" and e["node"] in nodes:
                node_meters.setdefault(e["node"], []).append(series[e["source_id"]][0])
        rack_meters = [series[e["source_id"]] for e in mine if e["scope"] == "rack"]
        inp = RackInput(rack.name, nodes, sum(n.devices.count for n in rack.nodes), loads,
                        rack_meters=[a for a, _ in rack_meters], node_meters=node_meters,
                        idle=[b for _, b in rack_meters])
        for dtype in dtypes:
            fig = rack_figure(inp, dtype)
            fig["rack_id"] = rack.name
            errors = [f"{e['source_id']}: {e['error']}" for e in mine if e.get("error")]
            if errors:
                fig["source_errors"] = errors
            out.append(fig)
    return out


class TraceCache:
    """The last power trace read, as a DataFrame, kept while its file is unchanged (same path,
    size and mtime): every source of a run shares one file, so each would otherwise read it again.
    One entry only: a run's figures need one trace at a time, and a big one is not kept alive."""

    def __init__(self) -> None:
        self._key: tuple[str, int, int] | None = None
        self._frame: Any = None

    def read(self, run_dir: Path, rel: str) -> Any:
        """``run_dir/rel`` as :func:`record.read_trace` gives it, from the cache while unchanged."""
        path = Path(run_dir) / rel
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key != self._key:
            self._key, self._frame = None, None  # a failed read leaves nothing stale behind
            self._frame = record.read_trace(run_dir, rel)
            self._key = key
        return self._frame


#: the process's trace cache (rank 0 and `bench racks` read the same file once per change)
_TRACES = TraceCache()


def _read_power(run_dir: Path, rel: str) -> Any:
    """A power trace as a DataFrame, read once while the file is unchanged (see :class:`TraceCache`)."""
    return _TRACES.read(run_dir, rel)


def _write_readings(run_dir: Path, by_source: dict[str, list[Any]]) -> str | None:
    """Every source's raw readings as one Parquet file under ``power/``; returns its relative path."""
    import pandas as pd

    rows = [{"source_id": sid, "t_begin_s": r.t_begin_s, "t_end_s": r.t_end_s, "power_w": r.power_w,
             "energy_j": r.energy_j, "ok": r.ok, "error": r.error, "source_time": r.source_time}
            for sid, readings in by_source.items() for r in readings]
    if not rows:
        return None
    rel = f"{POWER_DIR}/readings.parquet"
    path = Path(run_dir) / rel
    if path.is_file():  # `bench racks` adding a late meter log: keep what is there
        rows = _read_power(run_dir, rel).to_dict("records") + rows
    df = pd.DataFrame(rows)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    record.atomic_write_bytes(path, buf.getvalue())
    return rel
