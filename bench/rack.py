"""Per-rack GFLOPS/W (specification A1.7, 单机架算效): the arithmetic, over plain inputs.

The lead's fleet code turns records and polled/logged meter readings into the dataclasses below,
all times on rank 0's timeline; :func:`rack_figure` returns one rack aggregate in the fleet
contract's format and :func:`site_figures` sums them. No I/O, no clocks, no torch.

Method (Green500 / EEHPC power methodology, MLPerf Power; methodology.md §4):

* **Window**: the rack's common core phase, the intersection of its devices' core phases. Phases
  whose begins or ends spread by more than 0.8 s (MLPerf's bound) are flagged, not refused: the
  intersection is under full load either way.
* **FLOPs**: per device, the batches completed inside the window (see :func:`flops_in_window`).
  Invalid devices add 0 FLOPs and make the figure invalid; so does a missing device.
* **Energy** over exactly the window, from the best source that gives a good figure, in the order
  rack meter(s) > node meters summed > device counters summed (``assurance``); the others are kept
  as ``alternatives``. Never a held or extrapolated value (see :func:`source_energy`).
* **Uncertainty**: see :func:`source_energy`; ``gflops_per_w_low/high`` = figure × (1 ∓ k·u), k = 2.
* **Plausibility**: zero/negative energy, or a rack figure above the best device's own GFLOPS/W
  (a ratio of sums cannot exceed its largest ratio), refuses that source.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

# one source's energy over a window lives in meter_energy (pure: `bench verify` recomputes it);
# its names stay importable from here
from .meter_energy import (  # noqa: F401 - re-exported
    ASSURANCE_SCOPE, RULES, STATUSES, MeterMethod, MeterScope, MeterSeries, MeterSpec, RackInputError, RackRules, Reading,
    SourceEnergy, Status, _bad, _finite, _is_finite, source_energy,
)


# -- inputs --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceLoad:
    """One device's measurement of one dtype, placed on rank 0's timeline.

    ``t_begin_s``/``t_end_s`` bound its core phase; ``batch_time_ms`` is every batch's device time
    (``samples.batch_time_ms``) and ``flops_per_batch`` = ``flops_per_gemm`` × ``iters_per_batch``.
    ``energy_j`` is the device counter's energy over its own core phase (None when not measured).
    """

    rack: str
    node: str
    device: int
    dtype: str
    t_begin_s: float
    t_end_s: float
    batch_time_ms: Sequence[float] = field(repr=False, compare=False)
    flops_per_batch: float
    valid: bool
    grade: str
    energy_j: float | None = None
    energy_accuracy_rel: float | None = None

    def __post_init__(self) -> None:
        bt = np.asarray(self.batch_time_ms, dtype=np.float64)
        # one fast test for the common, good case (100,000 loads a site): the precise message only on failure
        good = (bt.ndim == 1 and bt.size > 0 and _is_finite(self.t_begin_s) and _is_finite(self.t_end_s)
                and self.t_end_s > self.t_begin_s and _is_finite(self.flops_per_batch) and self.flops_per_batch > 0
                and (self.energy_j is None or _is_finite(self.energy_j))
                and (self.energy_accuracy_rel is None or _is_finite(self.energy_accuracy_rel)))
        if good:
            lo, hi = bt.min(), bt.max()
            good = bool(lo > 0) and math.isfinite(hi)  # a NaN makes min() NaN: not > 0
        if not good:
            self._explain(bt)
        object.__setattr__(self, "batch_time_ms", bt)

    def _explain(self, bt: np.ndarray) -> None:
        where = f"load {self.node}/{self.device} {self.dtype}"
        _finite(f"{where}.t_begin_s", self.t_begin_s)
        _finite(f"{where}.t_end_s", self.t_end_s)
        if self.t_end_s <= self.t_begin_s:
            raise _bad(f"{where}.t_end_s", self.t_end_s, f"a time after t_begin_s ({self.t_begin_s})")
        _finite(f"{where}.flops_per_batch", self.flops_per_batch, positive=True)
        _finite(f"{where}.energy_j", self.energy_j, optional=True)
        _finite(f"{where}.energy_accuracy_rel", self.energy_accuracy_rel, optional=True)
        raise _bad(f"{where}.batch_time_ms", f"{bt.size} values", "a non-empty list of finite times > 0 (ms)")

    @property
    def core_phase_s(self) -> float:
        return self.t_end_s - self.t_begin_s

    @property
    def flops_total(self) -> float:
        return self.flops_per_batch * len(self.batch_time_ms)


def device_load(measurement: Mapping[str, Any], *, rack: str, node: str, t_begin_s: float, t_end_s: float) -> DeviceLoad:
    """A :class:`DeviceLoad` from a measurement object (results/README.md) and its core phase's
    edges on rank 0's timeline; checks that the batches add up to the recorded ``flops_total``."""
    where = f"measurement {measurement.get('id')!r}"
    try:
        samples = measurement["samples"]
        bt = samples["batch_time_ms"]
        flops_per_batch = float(measurement["flops_per_gemm"]) * int(samples["iters_per_batch"])
        device, dtype = int(measurement["device"]), str(measurement["dtype"])
    except (KeyError, TypeError, ValueError) as e:
        raise _bad(where, repr(e), "device, dtype, flops_per_gemm, samples.batch_time_ms and samples.iters_per_batch") from None
    load = DeviceLoad(rack=rack, node=node, device=device, dtype=dtype,
                      t_begin_s=t_begin_s, t_end_s=t_end_s, batch_time_ms=bt, flops_per_batch=flops_per_batch,
                      valid=bool(measurement.get("valid")), grade=str(measurement.get("grade")),
                      energy_j=measurement.get("energy_j"))
    total = measurement.get("flops_total")
    if total is not None and not math.isclose(load.flops_total, float(total), rel_tol=1e-9):
        raise _bad(f"{where}.flops_total", total, f"flops_per_gemm × iters_per_batch × batches = {load.flops_total:.6g}")
    return load



@dataclass(frozen=True)
class RackInput:
    """One rack: its nodes, the device count the site inventory declares, every device load (all
    dtypes), its rack meters (several are summed: A and B feeds), each node's meters (summed per
    node) and the same rack meters' readings before the load (``idle``)."""

    rack: str
    nodes: Sequence[str]
    devices_expected: int
    loads: Sequence[DeviceLoad]
    rack_meters: Sequence[MeterSeries] = ()
    node_meters: Mapping[str, Sequence[MeterSeries]] = field(default_factory=dict)
    idle: Sequence[MeterSeries] = ()

    def __post_init__(self) -> None:
        if isinstance(self.devices_expected, bool) or not isinstance(self.devices_expected, int) or self.devices_expected < 0:
            raise _bad(f"rack {self.rack!r}.devices_expected", self.devices_expected, "an integer ≥ 0")
        nodes = set(self.nodes)
        if len(nodes) != len(self.nodes):
            raise _bad(f"rack {self.rack!r}.nodes", list(self.nodes), "distinct node names")
        seen: set[tuple[str, int, str]] = set()
        for ld in self.loads:
            if ld.rack != self.rack:
                raise _bad(f"load {ld.node}/{ld.device}.rack", ld.rack, f"this rack, {self.rack!r}")
            if ld.node not in nodes:
                raise _bad(f"load {ld.node}/{ld.device}.node", ld.node, f"one of the rack's nodes {sorted(nodes)}")
            key = (ld.node, ld.device, ld.dtype)
            if key in seen:
                raise _bad(f"rack {self.rack!r}.loads", key, "one load per node, device and dtype")
            seen.add(key)
        for node in self.node_meters:
            if node not in nodes:
                raise _bad(f"rack {self.rack!r}.node_meters", node, f"one of the rack's nodes {sorted(nodes)}")


# -- FLOPs ---------------------------------------------------------------------------------------
def flops_in_window(load: DeviceLoad, t_begin_s: float, t_end_s: float) -> float:
    """FLOPs of the load's batches inside ``[t_begin_s, t_end_s]``.

    Batches run back to back from ``load.t_begin_s``; batch j ends at t_begin + the cumulative
    batch times, stretched to the core phase (× core_phase_s / Σ batch_time), because the device
    times omit the host's gaps between batches: spreading those gaps evenly places each batch where
    the wall clock saw it, and the whole phase holds exactly ``flops_total``. The batch that
    straddles an edge is pro-rated by the fraction of its time inside the window (the device
    does its work evenly over a batch); batches outside count 0.
    """
    bt = load.batch_time_ms
    cum = np.cumsum(bt)
    wall_per_device_s = load.core_phase_s / float(cum[-1])  # seconds of wall clock per device ms

    def batches_done(t: float) -> float:
        u_ms = (t - load.t_begin_s) / wall_per_device_s
        if u_ms <= 0.0:
            return 0.0
        if u_ms >= cum[-1]:
            return float(len(bt))
        i = int(np.searchsorted(cum, u_ms, side="right"))  # batches finished by t
        start_ms = float(cum[i - 1]) if i else 0.0
        return i + (u_ms - start_ms) / float(bt[i])

    return load.flops_per_batch * (batches_done(t_end_s) - batches_done(t_begin_s))



# -- the rack figure -----------------------------------------------------------------------------
@dataclass
class _Candidate:
    """One way to get the rack's energy (one assurance level), from one or more sources."""

    assurance: str
    sources: list[SourceEnergy]
    method: str
    note: str | None = None
    status: Status = "ok"
    reason: str | None = None

    @property
    def energy_j(self) -> float:
        return sum(s.energy_j for s in self.sources)  # type: ignore[misc]

    @property
    def u_energy_j(self) -> float:
        # independent meters: absolute uncertainties add in quadrature
        return math.sqrt(sum(s.u_energy_j ** 2 for s in self.sources))  # type: ignore[operator]


def _worst(statuses: Sequence[Status]) -> Status:
    return max(statuses, key=STATUSES.index) if statuses else "ok"


def _candidate(assurance: str, sources: list[SourceEnergy], extra_missing: list[str] | None = None) -> _Candidate:
    methods = {s.method for s in sources}
    cand = _Candidate(assurance, sources, methods.pop() if len(methods) == 1 else "mixed")
    bad = [s for s in sources if s.status != "ok"]
    reasons = list(extra_missing or []) + [s.reason for s in bad if s.reason]
    cand.status = "missing" if extra_missing else _worst([s.status for s in bad])
    notes = [s.reason for s in sources if s.status == "ok" and s.reason]
    if reasons:
        cand.reason = "; ".join(reasons)
    cand.note = "; ".join(notes) or None
    return cand


def _meter_candidates(inp: RackInput, t0: float, t1: float, rules: RackRules) -> list[_Candidate]:
    out = []
    if inp.rack_meters:
        out.append(_candidate("rack-meter", [source_energy(s, t0, t1, rules) for s in inp.rack_meters]))
    if any(inp.node_meters.values()):
        bare = [n for n in inp.nodes if not inp.node_meters.get(n)]
        sources = [source_energy(s, t0, t1, rules) for n in inp.nodes for s in inp.node_meters.get(n, ())]
        out.append(_candidate("node-meters", sources, [f"node {n} has no node meter" for n in bare]))
    return out


def _device_candidate(loads: Sequence[DeviceLoad], window_s: float, rules: RackRules) -> _Candidate | None:
    """Device counters summed. Each counter brackets the device's own core phase, which holds the
    rack window: its mean power there × the window is the device's energy in the window."""
    if not any(ld.energy_j is not None for ld in loads):
        return None
    sources = []
    for ld in loads:
        sid = f"device:{ld.node}/{ld.device}"
        if ld.energy_j is None or ld.energy_j <= 0:
            why = "no energy reading" if ld.energy_j is None else f"implausible: energy {ld.energy_j:g} J (expected > 0)"
            sources.append(SourceEnergy(sid, "counter", "missing", f"{sid}: {why}"))
            continue
        energy = ld.energy_j * window_s / ld.core_phase_s
        acc = ld.energy_accuracy_rel if ld.energy_accuracy_rel is not None else rules.device_counter_accuracy_rel
        sources.append(SourceEnergy(sid, "counter", "ok", None, energy, acc * abs(energy), components_rel={"accuracy": acc}))
    cand = _candidate("device-counters", sources)
    cand.note = "device counters over each device's own core phase, scaled to the rack window (mean power × window)"
    return cand


def _plausible(cand: _Candidate, flops: float, best_gflops_per_w: float | None, rules: RackRules) -> None:
    """Refuse (status missing, 'implausible: …') a zero/negative energy or a figure above the best device's."""
    if cand.status != "ok":
        return
    energy = cand.energy_j
    if not energy > 0:
        cand.status, cand.reason = "missing", f"implausible: energy {energy:g} J over the window (expected > 0)"
        return
    figure = flops / energy / 1e9
    if best_gflops_per_w is not None and figure > best_gflops_per_w * (1 + rules.plausibility_rel_tol):
        cand.status = "missing"
        cand.reason = (f"implausible: {cand.assurance} figure {figure:.6g} GFLOPS/W is above the best device's "
                       f"own {best_gflops_per_w:.6g} GFLOPS/W")


def _best_device_gflops_per_w(loads: Sequence[DeviceLoad], flops: Sequence[float], window_s: float) -> float | None:
    """Max over devices of (FLOPs counted in the window) / (its mean power × window); None unless every
    device has an energy reading (otherwise the max is no bound for the rack)."""
    if not loads or any(ld.energy_j is None or ld.energy_j <= 0 for ld in loads):
        return None
    return max(f / (ld.energy_j * window_s / ld.core_phase_s) / 1e9 for ld, f in zip(loads, flops))  # type: ignore[operator]


def _idle_power_w(idle: Sequence[MeterSeries]) -> float | None:
    """Σ over the idle series of the mean of their successful power readings (counter slope otherwise)."""
    if not idle:
        return None
    total = 0.0
    for s in idle:
        ok = [r for r in s.readings if r.ok]
        powers = [float(r.power_w) for r in ok if r.power_w is not None]
        counts = sorted((r.t_mid_s, float(r.energy_j)) for r in ok if r.energy_j is not None)
        if powers:
            total += statistics.fmean(powers)
        elif len(counts) >= 2 and counts[-1][0] > counts[0][0]:
            total += (counts[-1][1] - counts[0][1]) / (counts[-1][0] - counts[0][0])
        else:
            return None
    return total


def _cand_summary(c: _Candidate, flops: float, window_s: float) -> dict[str, Any]:
    ok = c.status == "ok"
    energy = c.energy_j if ok else None
    return {
        "assurance": c.assurance, "power_scope": ASSURANCE_SCOPE[c.assurance], "power_method": c.method,
        "power_sources": [s.source_id for s in c.sources], "status": c.status, "reason": c.reason, "note": c.note,
        "energy_j": energy, "power_w": energy / window_s if energy else None,
        "gflops_per_w": flops / energy / 1e9 if energy else None,
        "uncertainty_rel": c.u_energy_j / energy if energy else None,
        "readings_inside": sum(s.readings_inside for s in c.sources),
        "readings_dropped_at_edges": sum(s.readings_dropped_at_edges for s in c.sources),
        "sources": [s.as_dict(window_s) for s in c.sources],
    }


def rack_figure(inp: RackInput, dtype: str, rules: RackRules = RULES) -> dict[str, Any]:
    """The rack aggregate of one dtype, in the fleet contract's format (plus ``alternatives``,
    ``phases_aligned``, ``phase_spread_s``, ``best_device_gflops_per_w``, ``notes``)."""
    loads = sorted((ld for ld in inp.loads if ld.dtype == dtype), key=lambda ld: (ld.node, ld.device))
    out: dict[str, Any] = {
        "scope": "rack", "rack_id": inp.rack, "dtype": dtype, "nodes": list(inp.nodes),
        "devices": len(loads), "devices_expected": inp.devices_expected,
        "devices_valid": sum(1 for ld in loads if ld.valid),
        "t_begin_s": None, "t_end_s": None, "window_s": None, "flops": None, "tflops": None,
        "energy_j": None, "power_w": None, "idle_power_w": _idle_power_w(inp.idle),
        "gflops_per_w": None, "gflops_per_w_low": None, "gflops_per_w_high": None, "uncertainty_rel": None,
        "assurance": None, "power_scope": None, "power_method": None, "power_sources": [],
        "readings_inside": 0, "readings_dropped_at_edges": 0,
        "status": "missing", "reason": None, "grade": "smoke", "valid": False,
        "phases_aligned": None, "phase_spread_s": None, "best_device_gflops_per_w": None,
        "alternatives": [], "notes": [],
    }
    if not loads:
        out["reason"] = f"no device of rack {inp.rack} measured {dtype}"
        return out
    begins = [ld.t_begin_s for ld in loads]
    ends = [ld.t_end_s for ld in loads]
    t0, t1 = max(begins), min(ends)
    spread = max(max(begins) - min(begins), max(ends) - min(ends))
    out["phase_spread_s"] = spread
    out["phases_aligned"] = spread <= rules.max_phase_spread_s
    if not out["phases_aligned"]:
        out["notes"].append(f"devices' core phases not aligned: edges spread by {spread:.3f} s (> {rules.max_phase_spread_s:g} s)")
    if t1 <= t0:
        out["reason"] = f"the devices' core phases do not overlap (latest begin {t0:.3f} s ≥ earliest end {t1:.3f} s)"
        return out
    window_s = t1 - t0
    per_device = [flops_in_window(ld, t0, t1) for ld in loads]
    flops = sum(f for ld, f in zip(loads, per_device) if ld.valid)
    counted = [f if ld.valid else 0.0 for ld, f in zip(loads, per_device)]
    best = _best_device_gflops_per_w(loads, counted, window_s)
    out.update(t_begin_s=t0, t_end_s=t1, window_s=window_s, flops=flops, tflops=flops / window_s / 1e12,
               best_device_gflops_per_w=best)
    if all(ld.grade == "assessment" for ld in loads) and window_s >= rules.min_assessment_window_s:
        out["grade"] = "assessment"

    cands = _meter_candidates(inp, t0, t1, rules)
    dev = _device_candidate(loads, window_s, rules)
    if dev is not None:
        cands.append(dev)
    for c in cands:
        _plausible(c, flops, best, rules)
    chosen = next((c for c in cands if c.status == "ok"), None)
    out["alternatives"] = [_cand_summary(c, flops, window_s) for c in cands if c is not chosen]

    validity: list[str] = []
    missing = inp.devices_expected - len(loads)
    if missing > 0:
        validity.append(f"{missing} device(s) missing: the inventory declares {inp.devices_expected}, {len(loads)} measured {dtype}")
    elif missing < 0:
        validity.append(f"{-missing} device(s) more than the inventory's {inp.devices_expected}")
    invalid = [f"{ld.node}/{ld.device}" for ld in loads if not ld.valid]
    if invalid:
        validity.append(f"invalid device(s), counted as 0 FLOPs: {', '.join(invalid)}")

    if chosen is None:
        head = cands[0] if cands else None
        out["status"] = head.status if head else "missing"
        why = "; ".join(f"{c.assurance}: {c.reason}" for c in cands) if cands else \
            "no power source: no rack meter, node meter or device counter"
        out["reason"] = "; ".join([why, *validity])
        return out

    s = _cand_summary(chosen, flops, window_s)
    u = s["uncertainty_rel"]
    k = rules.coverage_k
    gpw = s["gflops_per_w"]
    out.update({key: s[key] for key in ("energy_j", "power_w", "gflops_per_w", "uncertainty_rel", "assurance",
                                        "power_scope", "power_method", "power_sources", "readings_inside",
                                        "readings_dropped_at_edges")})
    out.update(gflops_per_w_low=max(0.0, gpw * (1 - k * u)), gflops_per_w_high=gpw * (1 + k * u),
               uncertainty_components=[{"source": x["source"], **x["uncertainty_components_rel"]} for x in s["sources"]],
               status="ok", reason="; ".join(validity) or None, valid=not validity)
    if chosen is not cands[0]:
        out["notes"].append(f"fell back to {chosen.assurance}: " + "; ".join(f"{c.assurance}: {c.reason}" for c in cands[:cands.index(chosen)]))
    if chosen.note:
        out["notes"].append(chosen.note)
    if best is None:
        out["notes"].append("not checked against the devices' own GFLOPS/W: not every device has an energy reading")
    return out


def site_figures(racks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Whole-run sums per dtype over rack aggregates: Σ tflops (every rack with a window, and the
    valid ones), rack counts by status, valid racks, devices measured and expected."""
    by_dtype: dict[str, dict[str, Any]] = {}
    for r in racks:
        d = by_dtype.setdefault(r["dtype"], {"racks": 0, **{st: 0 for st in STATUSES}, "valid": 0, "tflops": 0.0,
                                             "tflops_valid": 0.0, "devices": 0, "devices_expected": 0})
        d["racks"] += 1
        d[r["status"]] += 1
        d["valid"] += bool(r["valid"])
        d["tflops"] += r["tflops"] or 0.0
        d["tflops_valid"] += (r["tflops"] or 0.0) if r["valid"] else 0.0
        d["devices"] += r["devices"]
        d["devices_expected"] += r["devices_expected"]
    return {"scope": "site", "dtypes": by_dtype}
