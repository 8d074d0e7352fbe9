"""A rack aggregate is never believed as written: it is cross-checked against the fleet record
that holds it, and counts for A1.7 only when every check passes.

A rack aggregate counts only from a ``kind: fleet`` record (one whose node shards hold the
measurements it sums). :func:`check_rack` returns what is wrong with one (nothing: it counts):

1. **Nodes**: ``nodes`` is a non-empty list; each is a node of the record whose shard was read and
   counts (status ``complete`` or ``failed``, not ``missing``/``running``/``interrupted``).
2. **Devices**: every FP16 measurement of those nodes is assessment grade, ``valid: true``, status
   ok, not ``timing_consistent: false``; each node holds as many as its entry declares
   (``devices``) and its manifest's inventory lists; their number equals the aggregate's
   ``devices``, ``devices_expected`` and ``devices_valid``.
3. **FLOPs, recomputed**: the FLOPs of each device's batches inside ``[t_begin_s, t_end_s]``
   (batch times from ``samples.batch_time_ms`` stretched to the core phase, on rank 0's timeline:
   the node's ``core_window`` minus its clock offset; the batch across an edge pro-rated) summed
   over the devices equal ``flops`` within 1e-6; ``window_s`` = ``t_end_s − t_begin_s`` and
   ``tflops`` = ``flops / window_s / 1e12`` within 1e-6; each device's batches add up to its
   ``flops_total``.
4. **Power**: ``gflops_per_w`` = ``flops / energy_j / 1e9`` within 1e-6; for a rack- or
   node-meter figure every ``power_sources`` entry is a source of the manifest's ``power`` list
   (of this rack, or of one of its nodes), whose ``trace_file`` is in the record's file index with
   the sha256 of the file on disk.
   ``energy_j`` is recomputed from those traces over exactly the window, with the run's own
   arithmetic (:mod:`.rack_energy`), and ``power_sources`` must hold every meter of the rack.
5. **Plausibility** (``rules/plausibility.yaml``): ``gflops_per_w`` at most the best of its own
   devices' GFLOPS/W (device power alone) × (1 + ``rack_over_best_device_rel``).
6. **Clocks**: each node's clock offset is known to ± half its best round trip (``clock.rtt_s``;
   rank 0's is exact); the devices' core phases on rank 0's timeline must spread, plus the
   largest such uncertainty, by at most ``RackRules.max_phase_spread_s`` (MLPerf Power: power and
   performance timestamps within 0.8 s). A node's offset without a round trip is unbounded.
7. **Site file** (``bench verify --site``, optional): the rack is a rack of the site file, its
   ``nodes`` are exactly that rack's nodes and each node measured as many FP16 devices as the site
   file gives it (a rack that leaves out a node, or a device, is not that rack's figure).
"""

from __future__ import annotations

import bisect
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from itertools import accumulate
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

__all__ = ["FleetContext", "fleet_context", "check_rack", "RackIO", "window_flops", "finite", "is_good", "REL_TOL",
           "COUNTED_STATUSES"]

#: "within rounding": figures written from the same arithmetic agree to this relative tolerance
REL_TOL = 1e-6
#: record statuses whose measurements count
COUNTED_STATUSES = frozenset({"complete", "failed"})
FP16 = "fp16"


@dataclass
class _Node:
    name: str
    entry: Mapping[str, Any]
    part: Any | None  # RunRecord of the shard, None when absent
    offset_s: float

    @property
    def status(self) -> str:
        return "absent" if self.part is None else str(self.part.manifest.get("status", "unknown"))

    @cached_property
    def fp16(self) -> list[dict[str, Any]]:
        """The shard's FP16 measurements (found once per node, however many aggregates list it)."""
        return [m for m in self.part.measurements if isinstance(m, dict) and m.get("dtype") == FP16]


@dataclass
class FleetContext:
    """What a fleet record holds that its rack aggregates must agree with."""

    path: Path
    nodes: dict[str, _Node] = field(default_factory=dict)
    power: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # source_id -> manifest power entry
    files: dict[str, str] = field(default_factory=dict)  # file index: path -> sha256
    #: rank 0's clock at the start of the load (``timeline.load_s``): earlier readings are the idle reading
    load_s: float = -math.inf


@dataclass(frozen=True)
class RackIO:
    """How :func:`check_rack` reads a record's files: ``sha256_of(root, rel)`` a file's digest,
    ``rows_of(root, rel)`` a trace's rows by source (the bytes whose digest the file index holds;
    ValueError otherwise); ``site_racks``: the site file's racks by name (``bench.site.Rack``), None
    when no site file was given; ``site_name`` names it in the reasons."""

    sha256_of: Callable[[Path, str], str]
    rows_of: Callable[[Path, str], Any]
    site_racks: Mapping[str, Any] | None = None
    site_name: str = "the site file"


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def finite(v: Any) -> float | None:
    """A finite JSON number (not a bool), else None."""
    if type(v) is float:  # the common case in one test (float(v) would be v itself)
        return v if math.isfinite(v) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def fleet_context(rec: Any) -> FleetContext:
    """The nodes (with their shard and clock offset), power sources and file index of a fleet record."""
    man = rec.manifest
    ctx = FleetContext(Path(rec.path))
    # the reader names each part root/shard (record._load_parts), so the joined paths match as text
    # (joined as strings: normpath gives what it gives on the joined Path, without pathlib's parsing)
    parts = {os.path.normpath(p.path): p for p in rec.parts}
    root = str(ctx.path)
    for e in man.get("nodes") or []:
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not isinstance(e.get("shard"), str):
            continue
        part = parts.get(os.path.normpath(os.path.join(root, e["shard"])))
        offset = finite(_dict(e.get("clock")).get("offset_s")) or 0.0
        ctx.nodes[e["name"]] = _Node(e["name"], e, part, offset)
    for p in man.get("power") or []:
        if isinstance(p, dict) and isinstance(p.get("source_id"), str):
            ctx.power[p["source_id"]] = p
    for f in man.get("files") or []:
        if isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("sha256"), str):
            ctx.files[f["path"]] = f["sha256"]
    load = finite(_dict(man.get("timeline")).get("load_s"))
    if load is not None:
        ctx.load_s = load
    return ctx


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-9)


def window_flops(m: Mapping[str, Any], offset_s: float, t0: float, t1: float) -> float:
    """FLOPs of measurement ``m``'s batches inside ``[t0, t1]`` on rank 0's timeline (ValueError
    when its samples, FLOPs or core window are missing or do not add up)."""
    samples = _dict(m.get("samples"))
    bt = samples.get("batch_time_ms")
    iters = samples.get("iters_per_batch")
    per_gemm = finite(m.get("flops_per_gemm"))
    win = _dict(m.get("core_window"))
    b, e = finite(win.get("t_begin_s")), finite(win.get("t_end_s"))
    if not isinstance(bt, list) or not bt or not isinstance(iters, int) or isinstance(iters, bool) or iters <= 0:
        raise ValueError("no samples.batch_time_ms / samples.iters_per_batch")
    try:  # C-speed checks: a real record holds thousands of batches per device
        lo, cum = min(bt), list(accumulate(bt))
        ok = isinstance(lo, (int, float)) and lo > 0 and math.isfinite(cum[-1])
    except TypeError:
        ok = False
    if not ok:
        raise ValueError("samples.batch_time_ms holds a time that is not a positive number")
    if per_gemm is None or per_gemm <= 0 or b is None or e is None or e <= b:
        raise ValueError("no flops_per_gemm or core_window")
    per_batch = per_gemm * iters
    total = finite(m.get("flops_total"))
    if total is not None and not _close(per_batch * len(bt), total):
        raise ValueError(f"its batches add up to {per_batch * len(bt):.6g} FLOPs, not its flops_total {total:.6g}")
    scale_s = (e - b) / cum[-1]  # wall seconds per device ms (the host's gaps spread evenly); cum[-1] > 0
    begin = b - offset_s
    done_t0 = _batches_done((t0 - begin) / scale_s, cum, bt)
    return per_batch * (_batches_done((t1 - begin) / scale_s, cum, bt) - done_t0)


def _batches_done(u: float, cum: list[float], times: list[float]) -> float:
    """Batches done ``u`` device ms into the core phase (``cum``: the running sums of ``times``),
    the batch under way pro-rated; none before it, all after it (a window that holds the whole
    core phase, the usual case, needs no search)."""
    if u <= 0:
        return 0.0
    if u >= cum[-1]:
        return float(len(cum))
    i = bisect.bisect_right(cum, u)
    start = cum[i - 1] if i else 0.0
    return i + (u - start) / times[i]


def is_good(m: Mapping[str, Any]) -> bool:
    """A valid, assessment-grade measurement with status ok whose wall-clock cross-check did not fail."""
    return (m.get("grade") == "assessment" and m.get("valid") is True and m.get("status", "ok") == "ok"
            and m.get("timing_consistent") is not False)


def _device_gflops_per_w(m: Mapping[str, Any]) -> float | None:
    t, p = finite(m.get("tflops")), finite(m.get("power_w"))
    return t * 1000 / p if t is not None and p else None


def _expected_devices(node: _Node) -> int | None:
    d = node.entry.get("devices")
    n = len(d) if isinstance(d, list) else d if isinstance(d, int) and not isinstance(d, bool) else None
    inv = node.part.manifest.get("inventory") if node.part is not None else None
    if isinstance(inv, list) and inv:
        if n is not None and n != len(inv):
            return -1  # the fleet's entry and the node's own inventory disagree
        n = len(inv)
    return n


def _nodes_problems(agg: Mapping[str, Any], ctx: FleetContext) -> tuple[list[str], list[tuple[_Node, list[Any]]]]:
    names = agg.get("nodes")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return ["lists no nodes"], []
    problems, found = [], []
    twice = sorted(n for n, k in Counter(names).items() if k > 1)
    if twice:  # the harness lists each node once: a repeated one would count its peaks and power twice
        problems.append(f"lists node(s) {', '.join(map(repr, twice))} more than once")
    for name in dict.fromkeys(names):
        node = ctx.nodes.get(name)
        if node is None:
            problems.append(f"node {name!r} is not a node of this record")
        elif node.status not in COUNTED_STATUSES:
            problems.append(f"node {name!r}: its record is {node.status!r}")
        else:
            found.append((node, node.fp16))
    return problems, found


def _device_problems(agg: Mapping[str, Any], found: Sequence[tuple[_Node, list[Any]]]) -> list[str]:
    problems = []
    n = 0
    for node, ms in found:
        n += len(ms)
        expected = _expected_devices(node)
        if expected == -1:
            problems.append(f"node {node.name!r}: the fleet's device count and the node's inventory disagree")
        elif expected is None or len(ms) != expected:
            problems.append(f"node {node.name!r}: {len(ms)} FP16 measurement(s) of {expected if expected is not None else '?'} "
                            "device(s): every device of the rack must be measured")
        bad = [str(m.get("id", "?")) for m in ms if not is_good(m)]
        if bad:
            problems.append(f"node {node.name!r}: not valid assessment-grade measurements: {', '.join(bad[:5])}")
    for key in ("devices", "devices_expected", "devices_valid"):
        if agg.get(key) != n:
            problems.append(f"{key} is {agg.get(key)!r}, its nodes hold {n} FP16 measurement(s)")
    return problems


def _flops_problems(agg: Mapping[str, Any], found: Sequence[tuple[_Node, list[Any]]]) -> list[str]:
    t0, t1 = finite(agg.get("t_begin_s")), finite(agg.get("t_end_s"))
    flops, tflops, window = finite(agg.get("flops")), finite(agg.get("tflops")), finite(agg.get("window_s"))
    if t0 is None or t1 is None or t1 <= t0 or flops is None or tflops is None or window is None:
        return ["no t_begin_s/t_end_s window with flops, tflops and window_s"]
    problems = []
    total = 0.0
    for node, ms in found:
        for m in ms:
            try:
                total += window_flops(m, node.offset_s, t0, t1)
            except ValueError as exc:
                problems.append(f"measurement {m.get('id', '?')!r}: {exc}")
    if problems:
        return problems
    if not _close(window, t1 - t0):
        problems.append(f"window_s {window:.6g} is not t_end_s − t_begin_s = {t1 - t0:.6g}")
    if not _close(flops, total):
        problems.append(f"flops {flops:.6g} is not the {total:.6g} its devices' batches give inside the window")
    if not _close(tflops, flops / window / 1e12):
        problems.append(f"tflops {tflops:.6g} is not flops / window_s / 1e12 = {flops / window / 1e12:.6g}")
    return problems


def _power_problems(agg: Mapping[str, Any], ctx: FleetContext, io: RackIO) -> list[str]:
    from .rack_energy import energy_problems

    problems = []
    gpw, energy, flops = finite(agg.get("gflops_per_w")), finite(agg.get("energy_j")), finite(agg.get("flops"))
    if gpw is None or energy is None or energy <= 0 or flops is None:
        return ["no gflops_per_w with energy_j"]
    if not _close(gpw, flops / energy / 1e9):
        problems.append(f"gflops_per_w {gpw:.6g} is not flops / energy_j / 1e9 = {flops / energy / 1e9:.6g}")
    if agg.get("assurance") not in ("rack-meter", "node-meters"):
        return problems  # device counters are shown, never scored: their traces are the devices'
    sources = agg.get("power_sources")
    if not isinstance(sources, list) or not sources:
        return problems + ["names no power_sources"]
    nodes = set(agg.get("nodes") or [])
    for sid in sources:
        src = ctx.power.get(sid) if isinstance(sid, str) else None
        if src is None:
            problems.append(f"power source {sid!r} is not in the record's power list")
            continue
        if src.get("rack") != agg.get("rack_id") and src.get("node") not in nodes:
            problems.append(f"power source {sid!r} belongs to rack {src.get('rack')!r} / node {src.get('node')!r}")
        rel = src.get("trace_file")
        want = ctx.files.get(rel) if isinstance(rel, str) else None
        if want is None:
            problems.append(f"power source {sid!r}: its trace file {rel!r} is not in the record's file index")
            continue
        try:
            got = io.sha256_of(ctx.path, rel)
        except Exception as exc:  # noqa: BLE001 - RecordError or OSError: the trace cannot be read
            problems.append(f"power source {sid!r}: trace {rel}: {exc}")
            continue
        if got != want:
            problems.append(f"power source {sid!r}: trace {rel} does not match its sha256 in the file index")
    if problems:
        return problems
    return energy_problems(agg, ctx.power, ctx.load_s, lambda rel: io.rows_of(ctx.path, rel), _close)


def _offset_uncertainty_s(node: _Node) -> float | None:
    """± half the best round trip of the node's clock offset (rank 0's own clock: 0); None: unbounded."""
    clock = _dict(node.entry.get("clock"))
    if node.entry.get("rank") == 0 and not finite(clock.get("offset_s")):
        return 0.0
    rtt = finite(clock.get("rtt_s"))
    return rtt / 2 if rtt is not None and rtt >= 0 else None


def _clock_problems(found: Sequence[tuple[_Node, list[Any]]], bound_s: float) -> list[str]:
    problems, begins, ends, worst = [], [], [], 0.0
    for node, ms in found:
        u = _offset_uncertainty_s(node)
        if u is None:
            problems.append(f"node {node.name!r}: its clock offset has no round trip (clock.rtt_s): its core phase "
                            "cannot be placed on rank 0's timeline within a known bound")
            continue
        worst = max(worst, u)
        for m in ms:
            win = _dict(m.get("core_window"))
            begins.append(float(win["t_begin_s"]) - node.offset_s)  # checked finite by the FLOPs check
            ends.append(float(win["t_end_s"]) - node.offset_s)
    if problems or not begins:
        return problems
    spread = max(max(begins) - min(begins), max(ends) - min(ends))
    if spread + worst > bound_s:
        problems.append(f"the devices' core phases spread by {spread:.3g} s on rank 0's timeline and the nodes' clock "
                        f"offsets are known to ± {worst:.3g} s (half the best round trip): {spread + worst:.3g} s is more "
                        f"than the {bound_s:g} s power and performance timestamps may differ by")
    return problems


def _site_problems(agg: Mapping[str, Any], found: Sequence[tuple[_Node, list[Any]]], io: RackIO) -> list[str]:
    rid = agg.get("rack_id")
    rack = io.site_racks.get(rid) if isinstance(rid, str) and io.site_racks is not None else None
    if rack is None:
        return [f"rack {rid!r} is not a rack of {io.site_name}"]
    want = {n.name: n.devices.count for n in rack.nodes}
    names = list(dict.fromkeys(agg.get("nodes") or []))
    problems = []
    left_out = [n for n in want if n not in names]
    if left_out:
        problems.append(f"leaves out node(s) {', '.join(left_out)} of rack {rid!r} in the site file: a rack's figure "
                        "holds every node of the rack")
    extra = [n for n in names if n not in want]
    if extra:
        problems.append(f"node(s) {', '.join(extra)} are not in rack {rid!r} of the site file")
    for node, ms in found:
        if node.name in want and len(ms) != want[node.name]:
            problems.append(f"node {node.name!r}: {len(ms)} FP16 measurement(s), the site file gives it "
                            f"{want[node.name]} device(s)")
    return problems


def check_rack(agg: Mapping[str, Any], ctx: FleetContext, *, best_device_slack: float, io: RackIO) -> list[str]:
    """What is wrong with ``agg`` (a rack aggregate of the fleet record ``ctx``); empty: it counts."""
    from icb_bench.bench.meter_energy import RULES  # the run's own bound on timestamp alignment

    problems, found = _nodes_problems(agg, ctx)
    if problems:
        return problems
    if io.site_racks is not None:
        problems = _site_problems(agg, found, io)
    problems += _device_problems(agg, found) + _flops_problems(agg, found)
    if problems:
        return problems
    problems = _clock_problems(found, RULES.max_phase_spread_s) + _power_problems(agg, ctx, io)
    best = [g for _, ms in found for m in ms if (g := _device_gflops_per_w(m)) is not None]
    gpw = finite(agg.get("gflops_per_w"))
    if best and gpw is not None and gpw > max(best) * (1 + best_device_slack):
        problems.append(f"gflops_per_w {gpw:.6g} is above the best of its own devices' ({max(best):.6g} GFLOPS/W "
                        "from device power alone): not physically possible")
    return problems
