"""Reading `bench run` records into what the claims need: one sample per device, rack figures.

Records are read only through :mod:`icb_bench.bench.record` (the one module that owns the
format; it imports no torch, and reads a fleet or site record with its parts, each measurement
marked with the ``rack_id`` the fleet knew). Records are visited in the order of their run ids,
never the order they were named in, so the arguments' order cannot change a verdict.

What counts, and how:

* Only records whose status is ``complete`` or ``failed`` (a run that closed; its failed devices
  count as zero); ``running``, ``interrupted``, ``missing`` or unknown ones — and fleet nodes in
  those states — are listed in ``not_counted`` and ignored.
* Only ``grade: assessment`` measurements and aggregates; the others are listed in ``smoke``.
* A device measured several times (several records of one device and dtype): every record is
  listed (``repeats``) and the device counts once with the **median** of its records' figures; it
  counts as correct only when every one of its records was.
* A device whose FP16 measurement is not correct (``valid`` not true, a status other than ok,
  no throughput), whose wall-clock cross-check failed (``timing_consistent: false``), that is
  above its datasheet ceiling beyond the plausibility bound, or that died during an
  assessment-grade run (``failed_devices``) is *sampled with zero throughput* — never dropped.
* Datasheet peaks come from verify's table only; a record's own ``peak`` is informational.
* Aggregates are never read as given. Node figures are recomputed from the node's measurements
  (shown, never scored, and only when every device of the node was measured and correct); rack
  figures count only from fleet records and only when :func:`.rack_check.check_rack` finds them
  consistent with the measurements, traces and file index they claim.
* Each device's rack: its ``rack_id``, else the rack whose fleet aggregate lists its host.
"""

from __future__ import annotations

import gc
import math
import statistics
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

from .operating_point import NodeRun, OperatingPoint, node_run, point_of
from .rack_check import COUNTED_STATUSES, FleetContext, RackIO, check_rack, finite, fleet_context, is_good
from .rack_energy import Trace, parse_trace
from .results import ASSURANCE_ORDER, EfficiencyFigure
from .rules import PeakTable, load_plausibility, normalise_model

__all__ = ["FP16", "DeviceSample", "Collected", "load_records", "collect", "num"]

FP16 = "fp16"
#: assurance of a figure whose aggregate predates the `assurance` key, from its power scope
_ASSURANCE_OF_SCOPE = {"rack": "rack-meter", "node": "node-meters", "device": "device-counters"}
#: magnitude beyond any physical figure a record holds (TFLOPS, W, J, GFLOPS/W): treated as missing
_ABSURD = 1e15


def num(v: Any) -> float | None:
    """A finite, physically possible number from a record field, or None."""
    if type(v) is float:  # the common case in one test (float(v) would be v itself)
        return v if math.isfinite(v) and abs(v) < _ABSURD else None
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) and abs(f) < _ABSURD else None


def _key(v: Any) -> str | None:
    """A hashable identifier from a record field of any type (None stays None)."""
    return None if v is None else str(v)


def load_records(paths: Iterable[str | Path]) -> list[Any]:
    """`bench run` records named directly or found one level below (raises RecordError)."""
    from icb_bench.bench.record import find_runs

    return find_runs(paths)


@dataclass(slots=True)  # one per device of a site: no __dict__ each
class DeviceSample:
    """One device's FP16 figure as counted: ``tflops`` is 0.0 for a failed or untrusted device.
    ``peak`` is the datasheet table's dense FP16 figure for its model (never the record's)."""

    tflops: float
    valid: bool
    peak: float | None
    peak_source: str | None
    peak_kind: str | None
    domestic: bool | None
    model: str  # peak-table key (or the normalised name)
    raw_model: str
    rack_id: str | None
    label: str  # run/measurement id, for listings
    ops: list[OperatingPoint] = field(default_factory=list)  # one per record of the device


@dataclass
class Collected:
    samples: dict[tuple[Any, ...], DeviceSample] = field(default_factory=dict)
    smoke: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    racks: list[EfficiencyFigure] = field(default_factory=list)
    lower: dict[str, list[float]] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_counted: list[str] = field(default_factory=list)  # records (or fleet nodes) not closed: ignored
    repeats: list[str] = field(default_factory=list)  # devices with several records: each listed, median counted


def _device_id(run_id: str, host: Any, device: Any, info: dict[str, Any]) -> tuple[Any, ...]:
    uuid = info.get("uuid")
    if uuid:
        return ("uuid", str(uuid))
    return ("dev", _key(host), _key(device), run_id if not host else "")




def _resumed_notes(run_id: str, manifest: dict[str, Any]) -> list[str]:
    """A resumed record says so: which pairs were measured after the stop, and which of them had
    been cut off mid-measurement (measured again, after a pause, with its peers idle)."""
    out = []
    for r in manifest.get("resumes") or []:
        if not isinstance(r, dict):
            continue
        prev = _dict(r.get("previous"))
        cut = [f"device {e.get('device')} {e.get('dtype')}" for e in prev.get("missing") or []
               if isinstance(e, dict) and e.get("state") == "in_progress"]
        pairs = [f"device {e.get('device')} {e.get('dtype')}" for e in r.get("measured") or r.get("measuring") or []
                 if isinstance(e, dict)]
        out.append(f"{run_id}: resumed at {r.get('started_at')} after it stopped {prev.get('status', '?')}"
                   f"; measured then: {', '.join(pairs) or 'nothing'}"
                   + (f"; cut off mid-measurement before: {', '.join(cut)}" if cut else ""))
    return out


def _stopped_before(manifest: dict[str, Any]) -> dict[str, str]:
    """The FP16 pairs of a closed record that its run never measured (``missing``), as failed
    devices: device index → why."""
    why = f"not measured: the run stopped ({_first_line(manifest.get('failure_reason')) or 'no reason recorded'})"
    return {str(e.get("device")): why for e in manifest.get("missing") or []
            if isinstance(e, dict) and e.get("dtype") == FP16 and e.get("device") is not None}


def _first_line(v: Any) -> str:
    return str(v).splitlines()[0][:200] if isinstance(v, str) and v.strip() else ""


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


_WHY_NOT_COUNTED = {
    "running": "the run has not finished (or its writer died)",
    "interrupted": "the run was interrupted",
    "missing": "the node never delivered its record",
    "absent": "its shard is not in the record",
}


def _dead_writer(rec: Any) -> str | None:
    """A running record whose writer is gone says so (bench/liveness.py: lock and heartbeat)."""
    from icb_bench.bench.liveness import dead_writer_reason

    return dead_writer_reason(rec)


def _is_rack(agg: dict[str, Any]) -> bool:
    return agg.get("scope") == "rack" or agg.get("power_scope") == "rack"


@dataclass(frozen=True)
class _Datasheet:
    """A model name's entry in the peak table and what a sample takes from it, read once per name."""

    entry: Any  # PeakEntry | None
    fp16: float | None
    ceiling: float | None
    key: str  # the table's key, or the normalised name
    source: str | None
    kind: str | None


class _Collector:
    def __init__(self, peaks: PeakTable, site: Any = None):
        self.peaks = peaks
        #: the site file's racks by name (None: no site file given)
        self.site_racks = {r.name: r for r in site.racks} if site is not None else None
        self.site_name = f"site file {site.site!r}" if site is not None else "the site file"
        self.out = Collected()
        self.host_rack: dict[str, str] = {}
        self.by_dev: dict[tuple[Any, ...], list[DeviceSample]] = {}
        self.sheets: dict[str, _Datasheet] = {}
        self.op_of: dict[int, OperatingPoint] = {}  # id(measurement) -> its operating point (for its rack)
        self.digests: dict[tuple[str, str], str] = {}  # (record, file) -> sha256, each file read once
        #: the last trace parsed, by (record, file, sha256): a fleet's racks share one readings file
        self.trace: tuple[tuple[str, str, str], Trace] | None = None
        bounds = load_plausibility().measured
        self.over_datasheet = float(bounds["device_over_datasheet_rel"])
        self.over_best_device = float(bounds["rack_over_best_device_rel"])

    def datasheet(self, model: str) -> _Datasheet:
        """The table's entry for a model name, with its figures per measured device as floats
        (computed once per name)."""
        got = self.sheets.get(model)
        if got is None:
            e = self.peaks.match(model)
            # per measured device: a card that shows up as several dies is measured die by die
            got = self.sheets[model] = _Datasheet(
                e, float(e.device_fp16_tflops) if e else None, float(e.ceiling_tflops / e.dies_per_card) if e else None,
                e.key if e else normalise_model(model), e.source if e else None, e.kind if e else None)
        return got

    # ---------------------------------------------------------------- records

    def record(self, rec: Any, prefix: str = "") -> None:
        """One record: counted only when it closed; a site record's runs and a fleet's nodes each on their own."""
        run_id = prefix + rec.run_id
        if not prefix:
            self.out.runs.append(run_id)
        if rec.kind == "site":  # runs merged by `bench merge`: each counts on its own status
            for part in rec.parts:
                self.record(part, prefix=run_id + "/")
            return
        status = rec.status
        if status not in COUNTED_STATUSES:
            why = _dead_writer(rec) or _WHY_NOT_COUNTED.get(status, "not a closed run")
            self.out.not_counted.append(f"{run_id}: status {status!r} ({why}); not counted")
            return
        if rec.kind == "fleet":
            self.fleet(run_id, rec)
            return
        self.unit(run_id, rec)
        for agg in _fp16_aggregates(rec):
            if _is_rack(agg):
                self.out.excluded.append(
                    f"{run_id}/aggregate rack {agg.get('rack_id') or '?'}: in a {rec.kind} record, not a fleet record; "
                    "not counted (rack figures count only from fleet records, checked against their node shards)")

    def fleet(self, run_id: str, rec: Any) -> None:
        ctx = fleet_context(rec)
        aggs = _fp16_aggregates(rec)
        self.host_racks(aggs)
        for node in ctx.nodes.values():
            if node.status not in COUNTED_STATUSES:
                why = _WHY_NOT_COUNTED.get(node.status, "not a closed run")
                self.out.not_counted.append(f"{run_id}/{node.name}: status {node.status!r} ({why}); not counted")
            else:
                self.unit(run_id, node.part)
        for agg in aggs:
            if _is_rack(agg):
                self.rack(run_id, agg, ctx)

    def unit(self, run_id: str, rec: Any) -> None:
        """A single-node record (or a fleet's node shard): its measurements, failed devices, node figure."""
        manifest = rec.manifest if isinstance(rec.manifest, dict) else {}
        node = node_run(manifest)
        seen: set[tuple[Any, ...]] = set()
        for m in rec.measurements:
            if isinstance(m, dict):
                self.measurement(run_id, m, seen, node)
        self.failed_devices(run_id, manifest, seen, node)
        self.node_figure(rec.measurements, manifest)
        self.out.notes.extend(_resumed_notes(run_id, manifest))

    # ---------------------------------------------------------------- measurements

    def measurement(self, run_id: str, m: dict[str, Any], seen: set[tuple[Any, ...]], node: NodeRun) -> None:
        label = f"{run_id}/{m.get('id', '?')}"
        grade = m.get("grade")
        if grade != "assessment":
            self.out.smoke.append(f"{label} ({grade or 'no grade'})")
            return
        dtype = m.get("dtype")
        trusted = m.get("timing_consistent") is not False  # a missing key (older records) is not a failure
        if not trusted:
            ratio = num(m.get("wall_vs_events"))
            self.out.excluded.append(
                f"{label}: device timer and wall clock disagree (wall_vs_events={'?' if ratio is None else f'{ratio:.3g}'})"
                + ("; counted as a failed device (zero throughput)" if dtype == FP16 else "")
            )
        rack_id = _key(m.get("rack_id")) or self.host_rack.get(str(m.get("host")))
        eff = num(m.get("gflops_per_w"))
        if trusted and dtype == FP16 and eff is not None and m.get("valid") is True:
            # one device's efficiency, whatever meter it used: shown with its scope, never a rack figure
            self.out.lower.setdefault(str(m.get("power_scope") or "device"), []).append(eff)
        if dtype != FP16:
            return
        info = _dict(m.get("device_info"))
        raw_model = str(info.get("model") or "unknown")
        sheet = self.datasheet(raw_model)
        entry = sheet.entry
        tflops = num(m.get("tflops"))
        ok = trusted and m.get("valid") is True and m.get("status", "ok") == "ok" and tflops is not None and tflops >= 0
        if ok and sheet.ceiling is not None and tflops > sheet.ceiling * (1 + self.over_datasheet):  # type: ignore[operator]
            ok = False
            self.out.excluded.append(
                f"{label}: {tflops:g} TFLOPS is above the datasheet dense FP16 ceiling {sheet.ceiling:g} "
                f"of {entry.name} by more than {self.over_datasheet:.0%}: not physically possible; counted as a failed device")
        self._note_record_peak(label, m, sheet)
        model = sheet.key
        dev = _device_id(run_id, m.get("host"), m.get("device"), info)
        op = self.op_of[id(m)] = point_of(model, label, m, node)
        domestic = info.get("domestic")
        self._add(dev, seen, DeviceSample(
            tflops=tflops if ok else 0.0,  # type: ignore[arg-type]
            valid=ok,
            peak=sheet.fp16,
            peak_source=sheet.source,
            peak_kind=sheet.kind,
            domestic=domestic if isinstance(domestic, bool) else None,
            model=model,
            raw_model=raw_model,
            rack_id=rack_id,
            label=label,
            ops=[op],
        ))

    def _note_record_peak(self, label: str, m: dict[str, Any], sheet: _Datasheet) -> None:
        rec_peak = num(_dict(m.get("peak")).get("tflops"))
        if rec_peak is not None and (sheet.fp16 is None or not math.isclose(rec_peak, sheet.fp16, rel_tol=1e-9)):
            table = "no entry" if sheet.fp16 is None else f"{sheet.fp16:g} TFLOPS"
            self.out.notes.append(f"{label}: the record's own peak {rec_peak:g} TFLOPS is informational; "
                                  f"verify's datasheet table is used ({table})")

    def _add(self, dev: tuple[Any, ...], seen: set[tuple[Any, ...]], s: DeviceSample) -> None:
        self.by_dev.setdefault(dev, []).append(s)
        seen.add(dev)

    def failed_devices(self, run_id: str, manifest: dict[str, Any], seen: set[tuple[Any, ...]], node: NodeRun) -> None:
        """Devices that died during an assessment-grade FP16 run: sampled, with zero throughput.
        So are the FP16 pairs a run stopped before (``missing``: a full disk): a site must not
        drop a poor device by stopping the run before it."""
        failed = {**_stopped_before(manifest), **_dict(manifest.get("failed_devices"))}
        if not failed:
            return
        plan = _dict(manifest.get("plan"))
        dtypes = plan.get("dtypes")
        duration, floor = num(plan.get("duration_s")), num(plan.get("min_assessment_s"))
        if isinstance(dtypes, list) and FP16 not in dtypes:
            return
        if duration is None or floor is None or duration < floor:
            self.out.smoke.extend(f"{run_id}/device {d} failed (not an assessment-grade run)" for d in failed)
            return
        inventory = {str(e.get("index")): e for e in manifest.get("inventory") or [] if isinstance(e, dict)}
        host = _dict(manifest.get("host")).get("hostname")
        for d, error in failed.items():
            info = inventory.get(str(d))
            if info is None or not info.get("model"):
                self.out.notes.append(f"{run_id}: device {d} failed ({error}) before its model was known; not matched to a model")
                continue
            dev = _device_id(run_id, host, d, info)  # JSON keys are strings; _device_id compares them as strings
            if dev in seen:
                continue  # its FP16 measurement is in this run
            sheet = self.datasheet(str(info["model"]))
            label = f"{run_id}/device {d} (failed: {error})"
            model = sheet.key
            self._add(dev, seen, DeviceSample(
                tflops=0.0, valid=False, peak=sheet.fp16, peak_source=sheet.source, peak_kind=sheet.kind,
                domestic=info.get("domestic") if isinstance(info.get("domestic"), bool) else None,
                model=model, raw_model=str(info["model"]),
                rack_id=self.host_rack.get(str(host)), label=label,
                ops=[point_of(model, label, {"device": info.get("index")}, node)],
            ))

    def finish(self) -> None:
        """One sample per device: the median of its records (zero unless every record was correct)."""
        for dev, ss in self.by_dev.items():
            if len(ss) == 1:
                self.out.samples[dev] = ss[0]
                continue
            ss = sorted(ss, key=lambda x: x.label)
            valid = all(x.valid for x in ss)
            med = statistics.median(x.tflops for x in ss)
            listed = ", ".join(f"{x.label} {x.tflops:g}" + ("" if x.valid else " ✗") for x in ss)
            self.out.repeats.append(
                f"{ss[0].raw_model} {dev[-1] if dev[0] == 'uuid' else ':'.join(str(x) for x in dev[1:3])}: "
                f"{len(ss)} records ({listed}); " + (f"median {med:g} TFLOPS counted" if valid else
                                                     "one failed correctness: counted as a failed device (zero)"))
            rack = next((x.rack_id for x in ss if x.rack_id is not None), None)
            self.out.samples[dev] = replace(ss[0], tflops=med if valid else 0.0, valid=valid, rack_id=rack,
                                            label=f"{ss[0].label} (+{len(ss) - 1} more)",
                                            ops=[op for x in ss for op in x.ops])

    # ---------------------------------------------------------------- aggregates, recomputed

    def node_figure(self, measurements: list[Any], manifest: dict[str, Any]) -> None:
        """A node's GFLOPS/W from its devices' own measurements (Σ FLOPs ÷ Σ energy), shown only —
        and only when every device of the node's inventory was measured correctly with energy."""
        inv = [e for e in manifest.get("inventory") or [] if isinstance(e, dict)]
        ms = [m for m in measurements if isinstance(m, dict) and m.get("dtype") == FP16]
        if not inv or len(ms) != len(inv) or len({m.get("device") for m in ms}) != len(inv):
            return
        flops, energy = [], []
        for m in ms:
            f, e = finite(m.get("flops_total")), finite(m.get("energy_j"))  # FLOPs exceed num()'s bound on other figures
            if not is_good(m) or f is None or e is None or e <= 0:
                return
            flops.append(f)
            energy.append(e)
        self.out.lower.setdefault("node", []).append(sum(flops) / sum(energy) / 1e9)

    def rack(self, run_id: str, agg: dict[str, Any], ctx: FleetContext) -> None:
        """A fleet's rack aggregate: listed (insufficient / missing), ignored (smoke), excluded (not
        valid, or inconsistent with what the record holds), or a rack figure."""
        from icb_bench.bench.record import record_file_sha256

        rid = _key(agg.get("rack_id"))
        where = f"{run_id}/aggregate rack" + (f" {rid}" if rid else "")
        power_scope = str(agg.get("power_scope") or agg.get("scope") or "rack")
        status = agg.get("status", "ok")
        assurance = agg.get("assurance") if agg.get("assurance") in ASSURANCE_ORDER else _ASSURANCE_OF_SCOPE.get(power_scope)
        power, tflops = num(agg.get("power_w")), num(agg.get("tflops"))
        label = str(rid or "?")
        if status in ("insufficient", "missing"):  # listed whatever its grade: a rack without a figure
            why = agg.get("reason") or ("fewer than 10 readings inside the window" if status == "insufficient" else "power source failed or stale")
            self.out.racks.append(EfficiencyFigure("rack", run_id, label, None, tflops, power, assurance=assurance,
                                                   status=str(status), reason=str(why), rack_id=rid))
            return
        if agg.get("grade") != "assessment":  # no grade is not assessment grade
            self.out.smoke.append(f"{where} ({agg.get('grade') or 'no grade'})")
            return
        if status != "ok":
            self.out.excluded.append(f"{where}: status {status!r}, expected ok")
            return
        valid = agg.get("valid")
        if valid is not True:
            why = "valid is false" if valid is False else "no `valid` flag" if valid is None else f"valid is {valid!r}, not true"
            self.out.excluded.append(f"{where}: {why}" + (f" ({agg['reason']})" if agg.get("reason") else ""))
            return
        def sha256_of(root: Path, rel: str) -> str:
            key = (str(root), rel)
            if key not in self.digests:
                self.digests[key] = record_file_sha256(root, rel)
            return self.digests[key]

        io = RackIO(sha256_of, lambda root, rel: self.trace_rows(root, rel, ctx.files.get(rel)), self.site_racks,
                    self.site_name)
        problems = check_rack(agg, ctx, best_device_slack=self.over_best_device, io=io)
        if problems:
            self.out.excluded.append(f"{where}: not counted, it does not agree with the record: " + "; ".join(problems))
            return
        eff = num(agg.get("gflops_per_w"))
        low, high = num(agg.get("gflops_per_w_low")), num(agg.get("gflops_per_w_high"))
        rel = num(agg.get("uncertainty_rel"))
        if (low is None or high is None) and rel is not None and 0 <= rel < 1:
            low, high = eff * (1 - rel), eff * (1 + rel)  # type: ignore[operator]
        if low is None or high is None or not low <= eff <= high:  # type: ignore[operator]
            low = high = None  # filled with the level's meter accuracy by the A1.7 claim
        fig = EfficiencyFigure("rack", run_id, label, eff, tflops, power, low=low, high=high, assurance=assurance,
                               rack_id=rid)
        if assurance is None:
            fig.reason = f"power scope {power_scope!r}: no meter assurance"
        peaks, fig.ops = [], []
        for n in agg["nodes"]:  # its devices, in one pass: their datasheet peaks and operating points
            for m in ctx.nodes[n].fp16:
                peaks.append(self.datasheet(str(_dict(m.get("device_info")).get("model") or "")).fp16)
                if (op := self.op_of.get(id(m))) is not None:
                    fig.ops.append(op)
        if power and all(pk is not None for pk in peaks):
            fig.nominal_gflops_per_w = sum(peaks) * 1000 / power  # type: ignore[arg-type]
        self.out.racks.append(fig)

    def trace_rows(self, root: Path, rel: str, sha256: str | None) -> Trace:
        """A trace's readings by source, parsed from the very bytes whose sha256 the file index holds."""
        import hashlib

        from icb_bench.bench.record import MAX_MANIFEST_BYTES, RecordError, read_record_file

        key = (str(root), rel, str(sha256))
        if self.trace is None or self.trace[0] != key:
            try:
                data = read_record_file(Path(root), Path(root) / rel, MAX_MANIFEST_BYTES)
            except RecordError as exc:
                raise ValueError(str(exc)) from None
            if hashlib.sha256(data).hexdigest() != sha256:
                raise ValueError(f"{rel} does not match its sha256 in the file index")
            self.trace = (key, parse_trace(rel, data))
        return self.trace[1]

    def host_racks(self, aggs: list[dict[str, Any]]) -> None:
        for a in aggs:
            rid, nodes = _key(a.get("rack_id")), a.get("nodes")
            if rid and isinstance(nodes, list):
                for n in nodes:
                    self.host_rack.setdefault(str(n), rid)


def _fp16_aggregates(rec: Any) -> list[dict[str, Any]]:
    raw = rec.manifest.get("aggregates") if isinstance(rec.manifest, dict) else None
    return [a for a in raw if isinstance(a, dict) and a.get("dtype") == FP16] if isinstance(raw, list) else []


def collect(records: Iterable[Any], peaks: PeakTable, site: Any = None) -> Collected:
    """Samples per device (the median of its records), rack figures that agree with their fleet
    record (with 理论算效), lower-scope efficiencies, and what was ignored or excluded, with the reason.
    ``site`` (a ``bench.site.Site``): each rack figure's nodes and devices are checked against it.
    The result does not depend on the order of ``records``."""
    c = _Collector(peaks, site)
    with _cyclic_gc_paused():
        for rec in sorted(records, key=lambda r: (r.run_id, str(r.path))):
            c.record(rec)
        c.finish()
    return c.out


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Collecting allocates millions of small objects (samples, readings) beside the caller's
    records: each of the cyclic collector's passes would rescan every record held (a third of the
    time on a 100,000-device site). Nothing collected here forms a cycle; reference counting still
    frees what is dropped. The collector is back on (if it was) when collecting ends or fails.

    What was allocated meanwhile joins the oldest generation as it is (``freeze`` then ``unfreeze``
    splice the generations' lists, without tracing them): left young, the collection due at the next
    allocation would trace every one of those millions of objects once more. A cycle among them is
    still found, by the next full collection. Done only when nothing was frozen before (``unfreeze``
    would thaw the caller's frozen objects too)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
