"""Reading `bench run` records into what the claims need: one sample per device, rack figures.

Records are read only through :mod:`icb_bench.bench.record` (the one module that owns the
format; it imports no torch, and reads a fleet or site record with its parts, each measurement
marked with the ``rack_id`` the fleet knew). One pass over every measurement and aggregate
(linear in their number).

What counts, and how:

* Only ``grade: assessment`` measurements and aggregates; the others are listed in ``smoke``.
* A device measured twice counts once (the later record replaces the earlier).
* A device whose FP16 measurement is not correct (``valid`` not true, a status other than ok,
  no throughput), whose wall-clock cross-check failed (``timing_consistent: false``), or that
  died during an assessment-grade run (``failed_devices`` of the manifest) is *sampled with zero
  throughput* — never dropped, so a site cannot improve its figure by losing bad devices.
* Each device's rack: its ``rack_id``, else the rack whose fleet aggregate lists its host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .results import ASSURANCE_ORDER, EfficiencyFigure
from .rules import PeakTable, normalise_model

__all__ = ["FP16", "DeviceSample", "Collected", "load_records", "collect", "num"]

FP16 = "fp16"
#: assurance of a figure whose aggregate predates the `assurance` key, from its power scope
_ASSURANCE_OF_SCOPE = {"rack": "rack-meter", "node": "node-meters", "device": "device-counters"}
#: magnitude beyond any physical figure a record holds (TFLOPS, W, J, GFLOPS/W): treated as missing
_ABSURD = 1e15


def num(v: Any) -> float | None:
    """A finite, physically possible number from a record field, or None."""
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


@dataclass
class DeviceSample:
    """One device's FP16 figure as counted: ``tflops`` is 0.0 for a failed or untrusted device."""

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


@dataclass
class Collected:
    samples: dict[tuple[Any, ...], DeviceSample] = field(default_factory=dict)
    smoke: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    racks: list[EfficiencyFigure] = field(default_factory=list)
    lower: dict[str, list[float]] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _device_id(run_id: str, host: Any, device: Any, info: dict[str, Any]) -> tuple[Any, ...]:
    uuid = info.get("uuid")
    if uuid:
        return ("uuid", str(uuid))
    return ("dev", _key(host), _key(device), run_id if not host else "")


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


class _Collector:
    def __init__(self, peaks: PeakTable):
        self.peaks = peaks
        self.out = Collected()
        self.key_of: dict[str, str] = {}
        self.host_rack: dict[str, str] = {}
        self.unplaced_peaks: dict[str, list[tuple[Any, ...]]] = {}  # run -> devices without a rack

    def model_key(self, model: str) -> str:
        if model not in self.key_of:
            entry = self.peaks.match(model)
            self.key_of[model] = entry.key if entry else normalise_model(model)
        return self.key_of[model]

    # ---------------------------------------------------------------- measurements

    def measurement(self, run_id: str, m: dict[str, Any], seen: set[tuple[Any, ...]]) -> None:
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
            scope = m.get("power_scope")
            if scope == "rack":
                self.out.racks.append(EfficiencyFigure(
                    "rack", run_id, str(rack_id or m.get("id", "?")), eff, num(m.get("tflops")), num(m.get("power_w")),
                    assurance="rack-meter", rack_id=rack_id))
            else:
                self.out.lower.setdefault(str(scope or "device"), []).append(eff)
        if dtype != FP16:
            return
        info = _dict(m.get("device_info"))
        peak = _dict(m.get("peak"))
        tflops = num(m.get("tflops"))
        ok = trusted and m.get("valid") is True and m.get("status", "ok") == "ok" and tflops is not None and tflops >= 0
        dev = _device_id(run_id, m.get("host"), m.get("device"), info)
        self._add(dev, seen, DeviceSample(
            tflops=tflops if ok else 0.0,  # type: ignore[arg-type]
            valid=ok,
            peak=num(peak.get("tflops")),
            peak_source=_key(peak.get("source")),
            peak_kind=_key(peak.get("kind")),
            domestic=info.get("domestic") if isinstance(info.get("domestic"), bool) else None,
            model=self.model_key(str(info.get("model") or "unknown")),
            raw_model=str(info.get("model") or "unknown"),
            rack_id=rack_id,
            label=label,
        ), run_id)

    def _add(self, dev: tuple[Any, ...], seen: set[tuple[Any, ...]], s: DeviceSample, run_id: str) -> None:
        self.out.samples.pop(dev, None)  # re-insert: a later record of a device replaces it
        self.out.samples[dev] = s
        seen.add(dev)
        if s.rack_id is None:
            self.unplaced_peaks.setdefault(run_id, []).append(dev)

    def failed_devices(self, run_id: str, manifest: dict[str, Any], seen: set[tuple[Any, ...]]) -> None:
        """Devices that died during an assessment-grade FP16 run: sampled, with zero throughput."""
        failed = _dict(manifest.get("failed_devices"))
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
            self._add(dev, seen, DeviceSample(
                tflops=0.0, valid=False, peak=None, peak_source=None, peak_kind=None,
                domestic=info.get("domestic") if isinstance(info.get("domestic"), bool) else None,
                model=self.model_key(str(info["model"])), raw_model=str(info["model"]),
                rack_id=self.host_rack.get(str(host)), label=f"{run_id}/device {d} (failed: {error})",
            ), run_id)

    # ---------------------------------------------------------------- aggregates

    def aggregate(self, run_id: str, agg: dict[str, Any]) -> tuple[EfficiencyFigure, int | None] | None:
        """A rack figure (scored or shown), or None (listed elsewhere, or below rack scope)."""
        rid = _key(agg.get("rack_id"))
        where = f"{run_id}/aggregate {agg.get('scope', '?')}" + (f" {rid}" if rid else "")
        power_scope = str(agg.get("power_scope") or agg.get("scope") or "node")
        is_rack = agg.get("scope") == "rack" or power_scope == "rack"
        status = agg.get("status", "ok")
        assurance = agg.get("assurance") if agg.get("assurance") in ASSURANCE_ORDER else _ASSURANCE_OF_SCOPE.get(power_scope)
        power, tflops = num(agg.get("power_w")), num(agg.get("tflops"))
        label = str(rid or agg.get("host") or agg.get("scope") or "?")
        n_dev = agg.get("devices")
        n_dev = len(n_dev) if isinstance(n_dev, list) else n_dev if isinstance(n_dev, int) else None
        if is_rack and status in ("insufficient", "missing"):  # listed whatever its grade: a rack without a figure
            why = agg.get("reason") or ("fewer than 10 readings inside the window" if status == "insufficient" else "power source failed or stale")
            return EfficiencyFigure("rack", run_id, label, None, tflops, power, assurance=assurance, status=status,
                                    reason=str(why), rack_id=rid), n_dev
        if agg.get("grade") != "assessment":  # no grade is not assessment grade
            self.out.smoke.append(f"{where} ({agg.get('grade') or 'no grade'})")
            return None
        if status != "ok":
            self.out.excluded.append(f"{where}: status {status!r}, expected ok")
            return None
        valid = agg.get("valid")
        if valid is not True:
            why = "valid is false" if valid is False else "no `valid` flag" if valid is None else f"valid is {valid!r}, not true"
            self.out.excluded.append(f"{where}: {why}" + (f" ({agg['reason']})" if agg.get("reason") else ""))
            return None
        eff = num(agg.get("gflops_per_w"))
        if eff is None and power and tflops is not None:
            eff = tflops * 1000 / power
        if eff is None:
            return None
        if not is_rack:
            if power_scope != "device":  # a node's sum of device readings: the device measurements show it
                self.out.lower.setdefault(power_scope, []).append(eff)
            return None
        low, high = num(agg.get("gflops_per_w_low")), num(agg.get("gflops_per_w_high"))
        rel = num(agg.get("uncertainty_rel"))
        if (low is None or high is None) and rel is not None and 0 <= rel < 1:
            low, high = eff * (1 - rel), eff * (1 + rel)
        if low is None or high is None or not low <= eff <= high:
            low = high = None  # filled with the level's meter accuracy by the A1.7 claim
        fig = EfficiencyFigure("rack", run_id, label, eff, tflops, power, low=low, high=high, assurance=assurance,
                               rack_id=rid)
        if assurance is None:
            fig.reason = f"power scope {power_scope!r}: no meter assurance"
        return fig, n_dev

    def host_racks(self, aggs: list[dict[str, Any]]) -> None:
        for a in aggs:
            rid, nodes = _key(a.get("rack_id")), a.get("nodes")
            if rid and isinstance(nodes, list):
                for n in nodes:
                    self.host_rack.setdefault(str(n), rid)


def _fp16_aggregates(rec: Any) -> list[dict[str, Any]]:
    raw = rec.manifest.get("aggregates") if isinstance(rec.manifest, dict) else None
    return [a for a in raw if isinstance(a, dict) and a.get("dtype") == FP16] if isinstance(raw, list) else []


def collect(records: Iterable[Any], peaks: PeakTable) -> Collected:
    """Samples per device, rack figures (with 理论算效 where the rack's devices are all known),
    lower-scope efficiencies, and what was ignored or excluded, with the reason."""
    records = list(records)
    c = _Collector(peaks)
    aggs_of = [_fp16_aggregates(r) for r in records]
    for aggs in aggs_of:
        c.host_racks(aggs)
    pending: list[tuple[EfficiencyFigure, int | None, int]] = []
    for rec, aggs in zip(records, aggs_of):
        run_id = rec.run_id
        c.out.runs.append(run_id)
        seen: set[tuple[Any, ...]] = set()
        for m in rec.measurements:
            if isinstance(m, dict):
                c.measurement(run_id, m, seen)
        for part in getattr(rec, "parts", None) or [rec]:  # a fleet's nodes each list their own failures
            if isinstance(part.manifest, dict):
                c.failed_devices(run_id, part.manifest, seen)
        n_rack = sum(1 for a in aggs if a.get("scope") == "rack" or a.get("power_scope") == "rack")
        for agg in aggs:
            got = c.aggregate(run_id, agg)
            if got is not None:
                pending.append((got[0], got[1], n_rack))
    _nominal_efficiency(c, pending)
    return c.out


def _nominal_efficiency(c: _Collector, pending: list[tuple[EfficiencyFigure, int | None, int]]) -> None:
    """理论算效 of a rack: Σ datasheet peaks of its devices over its power, where every device is known."""
    by_rack: dict[str, list[float]] = {}
    unplaced: dict[str, list[float]] = {}
    for s in c.out.samples.values():
        if s.peak is not None and s.rack_id is not None:
            by_rack.setdefault(s.rack_id, []).append(s.peak)
    for run_id, devs in c.unplaced_peaks.items():
        unplaced[run_id] = [s.peak for d in dict.fromkeys(devs) if (s := c.out.samples.get(d)) is not None and s.rack_id is None and s.peak is not None]
    for fig, n_dev, n_rack in pending:
        peaks = by_rack.get(fig.rack_id) if fig.rack_id in by_rack else (unplaced.get(fig.run_id) if n_rack == 1 else None)
        if fig.power_w and peaks and (n_dev is None or n_dev == len(peaks)):
            fig.nominal_gflops_per_w = sum(peaks) * 1000 / fig.power_w
        c.out.racks.append(fig)
