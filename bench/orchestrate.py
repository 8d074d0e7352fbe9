"""Run a plan on every selected device at once and close the record.

One worker process per device (``spawn``: safe with CUDA and device plugins) with a common start
before each core phase, so the node is under full load as a rack would be. A single device runs
in-process. Workers write their own measurement files; the parent owns the manifest and, at the
end, reads the measurements back from disk — the record is the single source of truth.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue as _queue
import secrets
import signal
import statistics
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from . import anomaly, record
from .inventory import host_info, hostname, utc_now
from .plan import RunPlan
from .runner import BARRIER_TIMEOUT_S, measure_device, summarize

OnEvent = Callable[[str, dict[str, Any]], None]


class Coordination(Protocol):
    """What a multi-node job adds to a node's run (:class:`icb_bench.bench.fleet.NodeLink` fits):
    the job-wide common start, and being told of finished files and lost devices."""

    def barrier(self, timeout_s: float) -> Any: ...

    def device_lost(self, index: int) -> None: ...

    def ship(self) -> int: ...


@dataclass
class RunOutcome:
    run_dir: Path
    status: str
    measurements: list[dict[str, Any]]
    aggregates: list[dict[str, Any]]
    failed_devices: dict[int, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 all valid; 1 a measurement invalid or a device failed."""
        if self.failed_devices or self.status != "complete":
            return 1
        ok = [m for m in self.measurements if m.get("valid")]
        return 0 if self.measurements and len(ok) == len(self.measurements) else 1


#: the run's log: one line per event (phases, measurements, warnings, failures), in the record
RUN_LOG = "run.log"
#: events too frequent for the log (one per batch)
_UNLOGGED = {"progress", "search"}


class RunLog:
    """``run.log`` in the record directory: what happened when, for whoever reads the record later
    (progress ticks left out). Written line by line and flushed, so a killed run keeps its log."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if self._fh.closed or kind in _UNLOGGED:
            return
        if kind == "measurement":
            s = data.get("summary") or {}
            text = (f"device {data.get('device')} {data.get('dtype')}: {s.get('status')} tflops={s.get('tflops')} "
                    f"grade={s.get('grade')} valid={s.get('valid')}" + (f" error={s.get('error')}" if s.get("error") else ""))
        elif kind == "device":
            info = data.get("info") or {}
            text = f"device {data.get('device')}: {info.get('model')} power={(data.get('power') or {}).get('name')}"
        else:
            text = " ".join(f"{k}={v}" for k, v in data.items() if k != "info")
        self._fh.write(f"{utc_now()} {kind} {text.splitlines()[0] if text else ''}\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def new_run_id() -> str:
    stamp = utc_now().replace("-", "").replace(":", "").split(".")[0]
    return f"{stamp}Z-{hostname()}-{secrets.token_hex(3)}"


class ScopeMonitor:
    """Node- and rack-scope readers (a BMC, a PDU) polled in the parent for the whole run.

    Each dtype's window is the span of the devices' core phases ([first begin, last end], from
    the workers' ``core_window`` events); its energy is computed once the readers' reporting
    delay has passed, and written to the manifest (``scope_power``) straight away.
    """

    def __init__(self, readers: list[Any], n_devices: int, writer: record.RecordWriter, hz: float):
        from .power.sampler import Sampler

        self.readers = readers
        self.n_devices = n_devices
        self.writer = writer
        self.sampler = Sampler(readers, hz=hz) if readers else None
        # a BMC's reading describes the past: wait that long after a window before closing it
        self.settle_s = max([float(getattr(r, "delay_s", 0.0)) for r in readers] + [0.0]) + 1.0
        self.windows: dict[str, list[tuple[float, float]]] = {}
        self.done: set[str] = set()
        self.results: list[dict[str, Any]] = []

    def __enter__(self) -> "ScopeMonitor":
        if self.sampler is not None:
            self.sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sampler is not None:
            self.sampler.stop()
            for r in self.readers:
                r.close()

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        if self.sampler is None:
            return
        if kind == "core_window":
            self.windows.setdefault(data["dtype"], []).append((data["t_begin_s"], data["t_end_s"]))
        self.flush(final=False)

    def flush(self, final: bool) -> None:
        """Close every dtype window whose devices are all done (``final``: whatever has ended)."""
        import time

        if self.sampler is None:
            return
        for dtype, spans in self.windows.items():
            if dtype in self.done or not (final or len(spans) >= self.n_devices):
                continue
            t0, t1 = min(a for a, _ in spans), max(b for _, b in spans)
            wait = t1 + self.settle_s - time.monotonic()
            if wait > 0:
                if not final:
                    continue
                time.sleep(wait)
            win = self.sampler.window_between(t0, t1)
            host = hostname()
            trace = record.write_trace(self.writer.path, f"{host}-scope-{dtype}", win.trace_rows())
            for reader, res in zip(self.readers, win.results):
                self.results.append({"dtype": dtype, "devices": len(spans), "reader": reader.describe(),
                                     "window": res.to_dict(), "trace_file": trace, "host": host})
            self.done.add(dtype)
            self.writer.update(scope_power=self.results)


def scope_aggregates(measurements: list[dict[str, Any]], scope_power: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Node/rack figures: the devices' FLOPs in a dtype's window over the BMC/PDU energy of that window."""
    out = []
    for sp in scope_power:
        w = sp["window"]
        ms = [m for m in measurements if m["dtype"] == sp["dtype"] and m.get("tflops")]
        valid = bool(ms) and all(m.get("valid") for m in ms)
        flops = sum(m.get("flops_total") or 0 for m in ms if m.get("valid"))
        energy = w.get("energy_j")
        out.append({
            "scope": w["scope"], "host": sp.get("host"), "dtype": sp["dtype"], "devices": len(ms),
            "tflops": sum(m["tflops"] for m in ms if m.get("valid")),
            "energy_j": energy, "power_w": w.get("power_w"),
            "gflops_per_w": (flops / energy / 1e9) if energy and flops else None,
            "power_scope": w["scope"], "power_method": w.get("method"), "power_source": w.get("source"),
            "power_note": w.get("note"), "window_s": w.get("window_s"),
            "grade": "assessment" if ms and all(m.get("grade") == "assessment" for m in ms) else "smoke",
            "valid": valid, "reader": sp.get("reader"), "trace_file": sp.get("trace_file"),
        })
    return out


def node_aggregates(measurements: list[dict[str, Any]], tolerance: float) -> list[dict[str, Any]]:
    """Per dtype: the node's sums over valid devices, and the devices below (1 − tol) × median."""
    out = []
    for dtype in dict.fromkeys(m["dtype"] for m in measurements):
        ms = [m for m in measurements if m["dtype"] == dtype and m.get("valid") and m.get("tflops")]
        if not ms:
            continue
        med = statistics.median(m["tflops"] for m in ms)
        outliers = [m["device"] for m in ms if m["tflops"] < (1 - tolerance) * med]
        energies = [m.get("energy_j") for m in ms]
        have_energy = all(e is not None for e in energies)
        energy = sum(energies) if have_energy else None  # type: ignore[arg-type]
        flops = sum(m.get("flops_total") or 0 for m in ms)
        window = max(m.get("core_phase_s") or 0 for m in ms)
        scopes = {m.get("power_scope") for m in ms}
        methods = {m.get("power_method") for m in ms}
        out.append({
            "scope": "node",
            "host": ms[0].get("host"),
            "dtype": dtype,
            "devices": len(ms),
            "tflops": sum(m["tflops"] for m in ms),
            "tflops_median_device": med,
            "energy_j": energy,
            # summed device power: the scope stays the devices', never passed off as node power
            "power_w": sum(m["power_w"] for m in ms) if have_energy and all(m.get("power_w") for m in ms) else None,
            "gflops_per_w": (flops / energy / 1e9) if energy else None,
            "power_scope": scopes.pop() if len(scopes) == 1 else "mixed",
            "power_method": methods.pop() if len(methods) == 1 else "mixed",
            "power_note": "sum of per-device readings" if have_energy else "not measured on every device",
            "window_s": window,
            "grade": "assessment" if all(m.get("grade") == "assessment" for m in ms) else "smoke",
            "valid": True,
            "outliers": outliers,
            "outlier_tolerance": tolerance,
            **anomaly.node_anomalies(ms),  # clock/temperature apart from the siblings (bench/anomaly.py)
        })
    return out


#: how often a worker checks that its parent is still there
PARENT_POLL_S = 1.0


def _exit_with_parent(parent_pid: int) -> None:
    """A worker whose parent died (SIGKILL, OOM) stops loading its device at once: nothing is
    left to record its results, and a device under load would skew the next run's power."""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)  # finished measurements are already on disk (atomic writes)
            threading.Event().wait(PARENT_POLL_S)

    threading.Thread(target=watch, name="icb-bench-parent-watch", daemon=True).start()


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (kill, timeout, a batch scheduler) takes the same path as Ctrl-C: workers are
    terminated and the record is closed as "interrupted". Only possible in the main thread."""
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


def _worker(plan_dict: dict[str, Any], index: int, run_dir: str, q: Any, barrier: Any, count: int,
            parent_pid: int) -> None:
    _exit_with_parent(parent_pid)
    plan = RunPlan.from_dict(plan_dict)
    if hasattr(barrier, "for_device"):  # a job's barrier tells this device's arrivals apart
        barrier = barrier.for_device(index)

    def emit(kind: str, **data: Any) -> None:
        q.put((kind, data))

    try:
        measure_device(plan, index, Path(run_dir), emit, barrier, count)
    except BaseException as exc:  # reported to the parent; the device counts as failed
        emit("device_failed", device=index, error=f"{type(exc).__name__}: {exc}")
        try:
            barrier.abort()
        except Exception:
            pass
        raise SystemExit(1)


def execute(plan: RunPlan, run_dir: Path, on_event: OnEvent, argv: list[str] | None = None,
            scope_readers: list[Any] | None = None, coordination: Coordination | None = None,
            manifest_extra: dict[str, Any] | None = None) -> RunOutcome:
    """Run ``plan``, writing the record to ``run_dir``. ``scope_readers``: opened node/rack
    readers (BMC, PDU) whose energy brackets each dtype's core phases across all devices.
    ``coordination``: this node's link to a multi-node job (common starts across the job; every
    finished file shipped to rank 0); ``manifest_extra``: keys added to the manifest."""
    from . import __version__

    run_dir = Path(run_dir)
    writer = record.RecordWriter(run_dir, {
        "run_id": run_dir.name,
        "created_at": utc_now(),
        "tool": {"name": "icb-bench", "version": __version__, "argv": argv or sys.argv},
        "plan": plan.to_dict(),
        "host": host_info(),
        "inventory": [],
        **(manifest_extra or {}),
    })
    writer.start()
    inventory: dict[int, dict[str, Any]] = {}
    failed: dict[int, str] = {}

    log = RunLog(run_dir / RUN_LOG)

    def handle(kind: str, data: dict[str, Any]) -> None:
        log.event(kind, data)
        if kind == "device":
            inventory[data["device"]] = {**data["info"], "power_reader": data.get("power")}
            writer.update(inventory=[inventory[i] for i in sorted(inventory)])
        elif kind == "device_failed" and data["device"] not in failed:
            failed[data["device"]] = data["error"]
            if coordination is not None:  # it arrives at no later common start of the job
                coordination.device_lost(data["device"])
        monitor.on_event(kind, data)
        if kind == "measurement" and coordination is not None:
            coordination.ship()  # each measurement reaches rank 0 before the next one starts
        on_event(kind, data)

    if scope_readers:
        writer.update(scope_readers=[r.describe() for r in scope_readers])
    monitor = ScopeMonitor(list(scope_readers or []), len(plan.devices), writer, plan.sample_hz)
    status = "complete"
    with monitor, _sigterm_as_interrupt():
        try:
            barrier = coordination.barrier(BARRIER_TIMEOUT_S) if coordination is not None else None
            # in a job, rank 0's process also receives every node's shards: its device is measured
            # in a worker of its own, away from that work (and its GIL)
            if len(plan.devices) == 1 and coordination is None:
                try:
                    measure_device(plan, plan.devices[0], run_dir, lambda kind, **d: handle(kind, d), barrier, 1)
                except Exception as exc:
                    handle("device_failed", {"device": plan.devices[0], "error": f"{type(exc).__name__}: {exc}"})
            else:
                _run_workers(plan, run_dir, handle, failed, barrier)
            monitor.flush(final=True)
        except KeyboardInterrupt:
            status = "interrupted"
    measurements = record.load_run(run_dir).measurements
    aggregates = node_aggregates(measurements, plan.outlier_tolerance) + scope_aggregates(measurements, monitor.results)
    if failed and status == "complete":
        status = "failed"
    log.event("finished", {"status": status, "failed_devices": failed})
    log.close()  # before the file index: the log is part of the record
    writer.finish(status, finished_at=utc_now(), aggregates=aggregates, failed_devices=failed)
    return RunOutcome(run_dir, status, measurements, aggregates, failed)


def _run_workers(plan: RunPlan, run_dir: Path, handle: Callable[[str, dict[str, Any]], None], failed: dict[int, str],
                 barrier: Any = None) -> None:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    if barrier is None:  # the node's own common start; a job's spans every node
        barrier = ctx.Barrier(len(plan.devices))
    procs = {i: ctx.Process(target=_worker, args=(plan.to_dict(), i, str(run_dir), q, barrier, len(plan.devices),
                                                  os.getpid()),
                            name=f"icb-bench-d{i}", daemon=True) for i in plan.devices}
    for p in procs.values():
        p.start()
    aborted = False
    try:
        while True:
            try:
                kind, data = q.get(timeout=0.2)
                handle(kind, data)
                continue
            except _queue.Empty:
                pass
            dead = [i for i, p in procs.items() if p.exitcode not in (None, 0)]
            if dead and not aborted:
                # a worker that died without reaching its own abort (OOM kill, segfault in a vendor
                # library) must not keep its peers waiting at the common start
                barrier.abort()
                aborted = True
            for i in dead:
                if i not in failed:
                    _drain(q, handle)  # its own last words (device_failed) come first
                    if i not in failed:
                        handle("device_failed", {"device": i, "error": f"worker exited with code {procs[i].exitcode}"})
            if all(not p.is_alive() for p in procs.values()):
                break
        _drain(q, handle)  # what arrived after the last process ended
        for i, p in procs.items():
            p.join()
            if p.exitcode not in (0, None) and i not in failed:
                handle("device_failed", {"device": i, "error": f"worker exited with code {p.exitcode}"})
    except KeyboardInterrupt:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.join(timeout=5)
        raise


def _drain(q: Any, handle: Callable[[str, dict[str, Any]], None]) -> None:
    while True:
        try:
            kind, data = q.get_nowait()
        except _queue.Empty:
            return
        handle(kind, data)


__all__ = ["execute", "new_run_id", "node_aggregates", "RunOutcome", "summarize"]
