"""One node's part of a multi-node `bench run`, and rank 0's merge of the whole run.

Layout of the run directory (``--out``; see results/README.md)::

    RUN/manifest.json           kind "fleet": nodes, shards and their digests, barriers, clocks, aggregates
    RUN/nodes/<node>/...        each node's shard: a single-node record, as written on that node
    RUN/power/<source>.parquet  rack and node meters polled by rank 0 (with a site file)

Every node writes its shard below its own ``--out`` and ships each file to rank 0 as it is
finished; rank 0 writes the merged manifest once every node is done or known dead. A node that
died is listed under ``missing_nodes`` with its devices; what it shipped before it died is kept.
Rank 0 interrupted (Ctrl-C, SIGTERM) at any point after the join closes the run as
``interrupted`` with what it has received: every node not done is named under ``missing_nodes``.
"""

from __future__ import annotations

import contextlib
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import record
from .fleet import END_STALL_MIN_S, FLEET_LOG, MAX_SKEW_S, Coordinator, FleetError, NodeLink, NodeState
from .fleet_job import FleetJob
from .inventory import utc_now
from .orchestrate import RunOutcome, execute, node_aggregates
from .plan import RunPlan
from .runner import SYNC_POINTS

FLEET_KIND = "fleet"
NODES_DIR = "nodes"
#: rank 0 interrupted: how long it still waits for nodes to ship the rest of their shards (a
#: scheduler's SIGTERM reaches every node at once: theirs close within seconds)
INTERRUPT_GRACE_S = 10.0
#: why a node is missing from a run whose rank 0 was interrupted
INTERRUPTED_REASON = "rank 0 was interrupted before this node finished"


@dataclass(frozen=True)
class FleetOptions:
    """How long to wait for peers (seconds), and what rank 0 measures besides the devices."""

    timeout_s: float = 900.0  # a common start waits this long for a node that does not arrive
    dead_after_s: float = 30.0  # a node whose heartbeat stops this long is dead
    site: Any = None  # a loaded site file (racks, nodes, meters), or None
    site_dir: Path | None = None
    extra_monitor: Any = None  # rank 0's rack/node meter monitor (see fleet_power), or None


@dataclass
class FleetOutcome:
    node: RunOutcome
    run_dir: Path
    status: str
    missing_nodes: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int = 0


def run_node(job: FleetJob, plan: RunPlan, run_dir: Path, on_event: Callable[[str, dict[str, Any]], None],
             opts: FleetOptions, scope_readers: list[Any] | None = None, argv: list[str] | None = None) -> FleetOutcome:
    """Measure this node as part of ``job``; on rank 0 also coordinate and merge."""
    run_dir = Path(run_dir)
    shard = run_dir / NODES_DIR / job.node
    link = NodeLink(job.address, job.node, shard, ship=not job.is_root, barrier_timeout_s=opts.timeout_s,
                    token=job.token).start()
    if not job.is_root:
        try:
            return _measure(job, plan, shard, link, on_event, opts, scope_readers, argv)
        finally:
            link.close()
    run_dir.mkdir(parents=True, exist_ok=True)
    nodes = [NodeState(n["name"], n["rank"], n["devices"], token=job.peer_tokens.get(n["name"])) for n in job.nodes]
    coord = Coordinator(job.address, nodes, run_dir, timeout_s=opts.timeout_s, dead_after_s=opts.dead_after_s)
    monitor = opts.extra_monitor
    created = utc_now()
    outcome: RunOutcome | None = None
    try:
        with _sigterm_raises():
            try:
                coord.start()
                if monitor is not None:
                    monitor.start()
                    monitor.idle_reading()  # the racks' idle power, before any device is loaded
                coord.release_start()
                outcome = _measure(job, plan, shard, link, on_event, opts, scope_readers, argv).node
                if outcome.status == "interrupted":  # rank 0's own measurement was cut short
                    raise KeyboardInterrupt("rank 0 interrupted during its measurement")
                coord.wait_all_done(max(opts.timeout_s, END_STALL_MIN_S))
            except KeyboardInterrupt:
                return _close_interrupted(job, plan, run_dir, coord, monitor, created, argv, outcome)
        return _close(job, plan, run_dir, coord, monitor, created, argv, outcome, interrupted=False)
    finally:
        link.close()
        if coord._thread.is_alive():  # an exception above: stop coordinating
            coord.stop()


def _measure(job: FleetJob, plan: RunPlan, shard: Path, link: NodeLink, on_event: Callable[[str, dict[str, Any]], None],
             opts: FleetOptions, scope_readers: list[Any] | None, argv: list[str] | None) -> FleetOutcome:
    """This node's own measurement, its shard shipped; a node other than rank 0 then waits for the merge."""
    extra = {"fleet": {"run_id": job.run_id, "node": job.node, "rank": job.rank, "world_size": job.world_size,
                       "launch": job.launch}}
    try:
        link.wait_start(opts.timeout_s)
    except FleetError as exc:
        raise FleetError(f"rank 0 did not start the job within {opts.timeout_s:g} s: {exc}") from exc
    outcome = execute(plan, shard, on_event, argv=argv, scope_readers=scope_readers, coordination=link,
                      manifest_extra=extra)
    link.finish(outcome.status, {"exit_code": outcome.exit_code})
    if not job.is_root:
        link.wait_merged(opts.timeout_s)
    return FleetOutcome(outcome, shard.parent.parent, outcome.status, exit_code=outcome.exit_code)


@contextlib.contextmanager
def _sigterm_raises() -> Any:
    """Rank 0: SIGTERM (a scheduler, kill) raises KeyboardInterrupt like Ctrl-C, also while it waits
    for peers or receives shards, so the run is closed as interrupted. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_held() -> Any:
    """While rank 0 writes the record that closes an interrupted run, a second Ctrl-C or SIGTERM
    must not leave it without one (SIGKILL still ends it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _close_interrupted(job: FleetJob, plan: RunPlan, run_dir: Path, coord: Coordinator, monitor: Any, created: str,
                       argv: list[str] | None, outcome: RunOutcome | None) -> FleetOutcome:
    """Rank 0 interrupted: a short grace for the nodes' last files, then the run closed with what
    rank 0 received (a second interrupt cuts the grace short)."""
    coord.log.event("interrupted", {"t_s": f"{time.monotonic():.3f}"})
    try:
        if coord._thread.is_alive():
            coord.wait_all_done(END_STALL_MIN_S, until_s=time.monotonic() + INTERRUPT_GRACE_S)
    except KeyboardInterrupt:
        pass
    with _signals_held():
        return _close(job, plan, run_dir, coord, monitor, created, argv, outcome, interrupted=True)


def _close(job: FleetJob, plan: RunPlan, run_dir: Path, coord: Coordinator, monitor: Any, created: str,
           argv: list[str] | None, outcome: RunOutcome | None, *, interrupted: bool) -> FleetOutcome:
    """Rank 0: stop coordinating, write the merged manifest, tell the nodes."""
    coord.stop()
    if monitor is not None:
        monitor.stop()
    fleet = write_fleet_manifest(run_dir, job, plan, coord, monitor, created, argv, interrupted=interrupted)
    coord.announce_merged()
    missing = fleet["missing_nodes"]
    if outcome is None:  # interrupted before rank 0's own record was closed
        outcome = RunOutcome(run_dir / NODES_DIR / job.node, "interrupted", [], [])
    code = 1 if missing or fleet["status"] != "complete" or outcome.exit_code else 0
    if code == 0 and any(not m.get("valid") for m in coord.index.measurements.values()):
        code = 1
    return FleetOutcome(outcome, run_dir, fleet["status"], missing, code)


def write_fleet_manifest(run_dir: Path, job: FleetJob, plan: RunPlan, coord: Coordinator, monitor: Any,
                         created: str, argv: list[str] | None, *, interrupted: bool = False) -> dict[str, Any]:
    """Rank 0: the merged manifest over every shard that reached it. ``interrupted``: rank 0 was
    stopped before every node was done; those are missing, with that reason."""
    from . import __version__

    nodes_out, shards, missing = [], [], []
    measurements: list[dict[str, Any]] = []
    index = coord.index
    if (run_dir / NODES_DIR / job.node).is_dir():
        index.add_local(job.node, run_dir / NODES_DIR / job.node)  # rank 0's own shard, on this disk
    for info in job.nodes:
        st = coord.nodes[info["name"]]
        rel = f"{NODES_DIR}/{info['name']}"
        entry = {"name": info["name"], "rank": info["rank"], "hostname": info["hostname"], "devices": info["devices"],
                 "shard": rel, "clock": job.clock.get(info["name"]), "rack": _rack_of(monitor, info["name"]),
                 "status": (st.done or {}).get("status") if st.done else "missing",
                 "files_received": coord.received.get(info["name"], 0)}
        if st.deaths:  # declared dead, and (back_s) when it came back; rank 0's clock
            entry["declared_dead"] = [dict(d) for d in st.deaths]
        digest = index.files.get(f"{rel}/{record.MANIFEST}")
        if digest is not None:
            shards.append({"path": f"{rel}/{record.MANIFEST}", "sha256": digest[0]})
        shard_ms = index.node_measurements(info["name"])  # a node that died: what it shipped
        if st.dead or st.done is None:
            entry["status"] = "missing"
            entry["reason"] = st.dead_reason or (INTERRUPTED_REASON if interrupted else "never finished")
            finished = {(m.get("device"), m.get("dtype")) for m in shard_ms}
            missing.append({"name": info["name"], "rank": info["rank"], "devices": info["devices"],
                            "reason": entry["reason"], "measurements_received": len(finished)})
        offset = (job.clock.get(info["name"]) or {}).get("offset_s", 0.0)
        for m in shard_ms:
            m["_clock_offset_s"] = offset
            measurements.append(m)
        nodes_out.append(entry)
    windows = timeline_windows(measurements)
    # each dtype's core-phase common start (runner.SYNC_POINTS: every dtype passes them all, in order)
    per, core = len(SYNC_POINTS), SYNC_POINTS.index("core")
    starts = {d: coord.barriers[i * per + core].released_s for i, d in enumerate(plan.dtypes)
              if i * per + core < len(coord.barriers)}
    skew = core_phase_skew(windows, starts)
    aggregates: list[dict[str, Any]] = []
    by_node: dict[Any, list[dict[str, Any]]] = {}
    for m in measurements:
        by_node.setdefault(m.get("host"), []).append(m)
    for info in job.nodes:
        aggregates += node_aggregates(by_node.get(info["name"], []), plan.outlier_tolerance)
    aggregates += run_totals(measurements)
    power: list[dict[str, Any]] = []
    timeline = dict(job.timeline)
    if monitor is not None:
        rack_aggs, power = monitor.figures(run_dir, measurements, windows, job)
        aggregates += rack_aggs
        timeline["load_s"] = monitor.t_load
        site_info = {"site": monitor.site.site, "sha256": getattr(monitor.site, "sha256", None),
                     "racks": [r.name for r in monitor.racks], "unknown_nodes": monitor.unknown_nodes}
    else:
        site_info = None
    # one node interrupted (a pod evicted) is that node's loss, like a missing one: the run is
    # "failed" with the node named, and every other node's measurements still count; only the
    # whole job interrupted (rank 0 itself) makes the run "interrupted"
    status = "complete" if not missing and all(n["status"] == "complete" for n in nodes_out) else "failed"
    if interrupted or next((n["status"] for n in nodes_out if n["rank"] == 0), None) == "interrupted":
        status = "interrupted"
    manifest = {
        "schema": record.SCHEMA, "kind": FLEET_KIND, "run_id": job.run_id, "status": status,
        "created_at": created, "finished_at": utc_now(),
        "tool": {"name": "icb-bench", "version": __version__, "argv": argv},
        "plan": plan.to_dict(), "launch": job.launch, "world_size": job.world_size,
        "timeline": timeline, "site": site_info, "nodes": nodes_out, "shards": shards, "missing_nodes": missing,
        "barriers": [b.to_dict() for b in coord.barriers], "core_phase_skew": skew, "max_skew_s": MAX_SKEW_S,
        "power": power, "aggregates": aggregates,
        "coordination_errors": coord.errors[:20], "rejected_files": coord.rejected[:20],
    }
    for m in measurements:
        m.pop("_clock_offset_s", None)
    own = sorted((run_dir / "power").glob("*")) if (run_dir / "power").is_dir() else []
    if (run_dir / FLEET_LOG).is_file():
        own.append(run_dir / FLEET_LOG)
    manifest["files"] = index.file_index(extra=own)
    # large jobs: compact JSON (the pretty printer is pure Python); small ones stay readable
    record.atomic_write_json(run_dir / record.MANIFEST, manifest, compact=len(job.nodes) > 64)
    return manifest


def _rack_of(monitor: Any, node: str) -> str | None:
    return monitor.rack_of(node) if monitor is not None else None


def timeline_windows(measurements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every measured core phase on rank 0's timeline (node clock − its offset)."""
    out = []
    for m in measurements:
        w = m.get("core_window")
        if not isinstance(w, dict) or m.get("tflops") is None:
            continue
        off = float(m.get("_clock_offset_s") or 0.0)
        out.append({"node": m.get("host"), "device": m.get("device"), "dtype": m.get("dtype"),
                    "t_begin_s": float(w["t_begin_s"]) - off, "t_end_s": float(w["t_end_s"]) - off})
    return out


def core_phase_skew(windows: list[dict[str, Any]], starts: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Per dtype: how far apart the devices' core phases began and ended. A node is out of bound
    when one of its devices began more than :data:`MAX_SKEW_S` after the common start (rank 0's
    release; the median begin where none is known) or ended that far from the median end."""
    out = []
    for dtype in dict.fromkeys(w["dtype"] for w in windows):
        ws = [w for w in windows if w["dtype"] == dtype]
        start = (starts or {}).get(dtype)
        b0 = start if start is not None else statistics.median(w["t_begin_s"] for w in ws)
        e0 = statistics.median(w["t_end_s"] for w in ws)
        flagged = sorted({str(w["node"]) for w in ws if w["t_begin_s"] - b0 > MAX_SKEW_S or abs(w["t_end_s"] - e0) > MAX_SKEW_S})
        out.append({"dtype": dtype, "common_start_s": start,
                    "begin_spread_s": max(w["t_begin_s"] for w in ws) - min(w["t_begin_s"] for w in ws),
                    "end_spread_s": max(w["t_end_s"] for w in ws) - min(w["t_end_s"] for w in ws),
                    "nodes_out_of_bound": flagged, "devices": len(ws)})
    return out


def run_totals(measurements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Whole-run sums per dtype over valid devices (device-scope power; never passed off as more)."""
    out = []
    for dtype in dict.fromkeys(m.get("dtype") for m in measurements):
        ms = [m for m in measurements if m.get("dtype") == dtype]
        ok = [m for m in ms if m.get("valid") and m.get("tflops")]
        if not ms:
            continue
        out.append({"scope": "run", "dtype": dtype, "nodes": len({m.get("host") for m in ms}),
                    "devices": len(ms), "devices_valid": len(ok),
                    "tflops": sum(m["tflops"] for m in ok),
                    "grade": "assessment" if ok and all(m.get("grade") == "assessment" for m in ok) else "smoke",
                    "valid": len(ok) == len(ms), "power_scope": None})
    return out
