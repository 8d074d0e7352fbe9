"""Run a plan on every selected device at once and close the record.

One worker process per device (``spawn``: safe with CUDA and device plugins) with a common start
before each core phase, so the node is under full load as a rack would be. A single device runs
in-process. Workers write their own measurement files; the parent owns the manifest and, at the
end, reads the measurements back from disk — the record is the single source of truth.
"""

from __future__ import annotations

import contextlib
import errno
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import pickle
import secrets
import signal
import statistics
import sys
import threading
import time
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


#: exit codes beyond 0 (all valid), 1 (a measurement invalid, a device failed) and 2 (bad input):
#: the run was stopped by SIGINT/SIGTERM and its record closed ``interrupted`` (resumable) ...
EXIT_INTERRUPTED = 3
#: ... and a record file could not be written (disk full, read-only): closed ``failed`` with the reason, or
#: not closable at all (``RunOutcome.close_error``)
EXIT_WRITE_FAILED = 4
#: a worker's exit status when one of its record writes failed (its last event says which file)
WORKER_WRITE_FAILED = 75


@dataclass
class RunOutcome:
    run_dir: Path
    status: str
    measurements: list[dict[str, Any]]
    aggregates: list[dict[str, Any]]
    failed_devices: dict[int, str] = field(default_factory=dict)
    #: (device, dtype) pairs of the plan left unmeasured by an interruption or a failed write
    missing: list[dict[str, Any]] = field(default_factory=list)
    #: why the run stopped early: a failed write ("disk full writing measurements/…: …")
    error: str | None = None
    #: the record could not be closed (its manifest is the last whole one written, status running)
    close_error: str | None = None

    @property
    def exit_code(self) -> int:
        """0 all valid; 1 a measurement invalid or a device failed; 3 interrupted; 4 a write failed."""
        if self.error or self.close_error:
            return EXIT_WRITE_FAILED
        if self.status == "interrupted":
            return EXIT_INTERRUPTED
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
    (progress ticks left out). Each line is one unbuffered append, so a killed run keeps its log; a
    line that cannot be written whole is cut off again (the log ends on its last whole line) and
    raised as :class:`record.RecordWriteError`, after which the log takes no more lines."""

    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise record.RecordWriteError(exc.errno, exc.strerror or str(exc), str(path)) from exc

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if self._fd is None or kind in _UNLOGGED:
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
        self._append(f"{utc_now()} {kind} {text.splitlines()[0] if text else ''}\n".encode("utf-8"))

    def _append(self, line: bytes) -> None:
        assert self._fd is not None
        size = None
        try:
            size = os.fstat(self._fd).st_size
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            with contextlib.suppress(OSError):
                if size is not None:
                    os.ftruncate(self._fd, size)
            self.close()
            raise record.RecordWriteError(exc.errno, exc.strerror or str(exc), str(self.path)) from exc

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


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


#: how long a worker's stop signal waits for the same stop to reach the run (then: interrupted)
WORKER_STOP_GRACE_S = 1.0

#: how often a worker checks that its parent is still there
PARENT_POLL_S = 1.0
#: how long a terminated worker gets to exit before it is killed (it must not keep its device loaded)
WORKER_STOP_S = 5.0


def _exit_with_parent(parent_pid: int) -> None:
    """A worker whose parent died (SIGKILL, OOM) stops loading its device at once: nothing is
    left to record its results, and a device under load would skew the next run's power."""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)  # finished measurements are already on disk (atomic writes)
            threading.Event().wait(PARENT_POLL_S)

    threading.Thread(target=watch, name="icb-bench-parent-watch", daemon=True).start()


class _StopSignals:
    """SIGINT and SIGTERM during a run (Ctrl-C, kill, a timeout, a batch scheduler): the first one
    raises KeyboardInterrupt where the parent is, so the measurement in progress is dropped and the
    record is closed ``interrupted``; any later one (and any at all once :meth:`hold` was called,
    while the record is being closed) is noted and ignored, so closing is never cut short; after
    a signal they stay ignored (the process only reports and exits; not in a job, whose rank 0
    goes on handling its own).
    Handlers can only be set in the main thread; elsewhere this does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, stay_ignored: bool = True) -> None:
        self.first: int | None = None
        self.holding = False
        self.stay_ignored = stay_ignored  # False in a job: rank 0 handles its own signals after its run
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.first is None:
            self.first = signum
            if not self.holding:
                raise KeyboardInterrupt(signal.Signals(signum).name)

    def hold(self) -> None:
        self.holding = True

    def __exit__(self, *exc: object) -> None:
        # a process stopped by a signal only reports and exits from here on: later signals are
        # ignored (the record is closed; a repeated Ctrl-C must not turn exit 3 into a traceback)
        for sig, previous in self._previous.items():
            signal.signal(sig, signal.SIG_IGN if self.first is not None and self.stay_ignored else previous)


@contextlib.contextmanager
def _sigint_blocked():
    """Workers are spawned with SIGINT blocked (the signal mask is inherited across exec), so a
    Ctrl-C, which reaches the whole process group, cannot stop one half-started: the parent
    decides what an interrupt does (see :func:`_worker`). A SIGINT to the parent meanwhile waits."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def write_failure(exc: OSError, run_dir: Path) -> str:
    """One line for a failed record write: ``disk full writing measurements/x.json: No space left
    on device`` (the path relative to the record where it lies inside it)."""
    where = Path(exc.filename) if exc.filename else None
    rel = str(where) if where is not None else "the record"
    if where is not None:
        with contextlib.suppress(ValueError, OSError):
            rel = where.resolve().relative_to(Path(run_dir).resolve()).as_posix()
    what = "disk full writing" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "cannot write"
    return f"{what} {rel}: {exc.strerror or exc}"


class _WriteFailed(Exception):
    """A worker's record write failed (the message is :func:`write_failure`'s line): stop the run."""


def _worker(plan_dict: dict[str, Any], index: int, run_dir: str, conn: Any, barrier: Any, count: int,
            parent_pid: int, only: tuple[str, ...] | None = None) -> None:
    """One device's measurement, in its own process; every event goes to the parent through
    ``conn``, this worker's own one-way pipe (nothing shared with its peers)."""
    # the parent decides what a Ctrl-C does (it terminates every worker); SIGTERM still ends this one
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _exit_with_parent(parent_pid)
    plan = RunPlan.from_dict(plan_dict)
    if hasattr(barrier, "for_device"):  # a job's barrier tells this device's arrivals apart
        barrier = barrier.for_device(index)
    sending = threading.Lock()  # a message is written whole, whichever thread emits it

    def emit(kind: str, **data: Any) -> None:
        # synchronous: once this returns the message is in the pipe, so it outlives this process
        # (a queue's feeder thread would still hold it, and a queue's lock is shared with the peers)
        with sending:
            try:
                conn.send((kind, data))
            except OSError:  # the parent is gone or stopped listening: nobody records what this measures
                os._exit(1)

    try:
        measure_device(plan, index, Path(run_dir), emit, barrier, count, only_dtypes=only)
    except record.RecordWriteError as exc:  # not the device's fault: the parent stops the whole run
        emit("write_failed", device=index, error=write_failure(exc, Path(run_dir)))
        raise SystemExit(WORKER_WRITE_FAILED)
    except BaseException as exc:  # reported to the parent; the device counts as failed
        emit("device_failed", device=index, error=f"{type(exc).__name__}: {exc}")
        try:
            barrier.abort()
        except Exception:
            pass
        raise SystemExit(1)
    finally:
        conn.close()


@dataclass
class _Run:
    """One pass of measurements into a record: a new run, or a resume of an earlier one."""

    plan: RunPlan
    run_dir: Path
    writer: record.RecordWriter
    on_event: OnEvent
    scope_readers: list[Any] = field(default_factory=list)
    coordination: Coordination | None = None
    #: a resume: device -> the dtypes to measure (the rest were measured before); None: all of the plan
    only: dict[int, tuple[str, ...]] | None = None
    stop: "_StopSignals | None" = None

    @property
    def devices(self) -> tuple[int, ...]:
        return self.plan.devices if self.only is None else tuple(d for d in self.plan.devices if self.only.get(d))


def execute(plan: RunPlan, run_dir: Path, on_event: OnEvent, argv: list[str] | None = None,
            scope_readers: list[Any] | None = None, coordination: Coordination | None = None,
            manifest_extra: dict[str, Any] | None = None) -> RunOutcome:
    """Run ``plan``, writing the record to ``run_dir``. ``scope_readers``: opened node/rack
    readers (BMC, PDU) whose energy brackets each dtype's core phases across all devices.
    ``coordination``: this node's link to a multi-node job (common starts across the job; every
    finished file shipped to rank 0); ``manifest_extra``: keys added to the manifest.

    SIGINT/SIGTERM stop the run (status ``interrupted``, ``missing`` lists what was not measured);
    a failed record write stops it at once (status ``failed``, ``error`` says which file and why).
    Raises :class:`record.RecordWriteError` only when the record cannot even be started."""
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
    return _measure(_Run(plan, run_dir, writer, on_event, list(scope_readers or []), coordination))


def continue_run(plan: RunPlan, writer: record.RecordWriter, on_event: OnEvent,
                 only: dict[int, tuple[str, ...]]) -> RunOutcome:
    """Measure ``only`` (device -> dtypes, in plan order) into the record ``writer`` holds open,
    reopened (status ``running``, its last ``resumes`` entry open) by :mod:`icb_bench.bench.resume`,
    and close it as :func:`execute` does. The devices measured synchronise with each other as in any run."""
    return _measure(_Run(plan, writer.path, writer, on_event, only=only))


def _measure(run: _Run) -> RunOutcome:
    plan, writer, run_dir, coordination = run.plan, run.writer, run.run_dir, run.coordination
    # a resume keeps what the record knew: earlier devices and genuine failures
    inventory: dict[int, dict[str, Any]] = {d["index"]: d for d in writer.manifest.get("inventory") or []
                                            if isinstance(d, dict) and isinstance(d.get("index"), int)}
    failed: dict[int, str] = {int(k): str(v) for k, v in (writer.manifest.get("failed_devices") or {}).items()}
    in_progress: dict[int, str] = {}
    log = RunLog(run_dir / RUN_LOG)

    def handle(kind: str, data: dict[str, Any]) -> None:
        if kind == "write_failed":
            raise _WriteFailed(str(data.get("error")))
        log.event(kind, data)
        if kind == "phase":
            in_progress[data["device"]] = data["dtype"]
        elif kind == "measurement":
            in_progress.pop(data["device"], None)
        elif kind == "device":
            inventory[data["device"]] = {**data["info"], "power_reader": data.get("power")}
            writer.update(inventory=[inventory[i] for i in sorted(inventory)])
        elif kind == "device_failed" and data["device"] not in failed:
            failed[data["device"]] = data["error"]
            if coordination is not None:  # it arrives at no later common start of the job
                coordination.device_lost(data["device"])
        monitor.on_event(kind, data)
        if kind == "measurement" and coordination is not None:
            coordination.ship()  # each measurement reaches rank 0 before the next one starts
        run.on_event(kind, data)

    monitor = ScopeMonitor(run.scope_readers, len(run.devices), writer, plan.sample_hz)
    status, error, signal_name = "complete", None, None
    with _StopSignals(stay_ignored=coordination is None) as stop:
        leaving: BaseException | None = None  # what the measuring itself ended with
        try:
            try:
                run.stop = stop
                with monitor:
                    if run.scope_readers:
                        writer.update(scope_readers=[r.describe() for r in run.scope_readers])
                    if run.only is not None:
                        log.event("resume", {"measuring": " ".join(f"{d}:{','.join(t)}" for d, t in run.only.items())})
                    barrier = coordination.barrier(BARRIER_TIMEOUT_S) if coordination is not None else None
                    # in a job, rank 0's process also receives every node's shards: its device is measured
                    # in a worker of its own, away from that work (and its GIL)
                    if len(run.devices) == 1 and coordination is None:
                        _measure_in_process(run, handle)
                    else:
                        _run_workers(run, handle, failed, barrier)
                    monitor.flush(final=True)
            except BaseException as exc:
                # first, however the measuring ended: a signal can no longer raise, so none can
                # land in the handlers below (between a failed write and the hold) and escape;
                # one that lands before the hold is a KeyboardInterrupt caught below
                leaving = exc
                stop.hold()
                raise
            stop.hold()
        except (KeyboardInterrupt, _WriteFailed, record.RecordWriteError) as exc:
            status, error, signal_name = _how_it_ended(exc, leaving, run_dir)
        return _close(run, _Closing(status, error, signal_name, failed, in_progress, monitor.results), log)


def _how_it_ended(exc: BaseException, leaving: BaseException | None, run_dir: Path) -> tuple[str, str | None, str | None]:
    """(status, failure reason, signal) of a pass that stopped with ``exc``; ``leaving`` is what
    the measuring itself raised. A stop signal raised as the measuring was already leaving (not
    ``leaving`` itself: its ``__context__`` is) does not change the ending: a failed write leaves
    the record ``failed`` with its reason, any other error goes on as it would have."""
    cause = exc.__context__ if isinstance(exc, KeyboardInterrupt) and exc is not leaving else None
    if isinstance(cause, (_WriteFailed, record.RecordWriteError)):
        exc = cause
    elif isinstance(cause, Exception):
        raise cause
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", None, str(exc) or "SIGINT"
    if isinstance(exc, record.RecordWriteError):
        return "failed", write_failure(exc, run_dir), None
    return "failed", str(exc), None


def _measure_in_process(run: _Run, handle: Callable[[str, dict[str, Any]], None]) -> None:
    """A single device, measured in this process (no worker to spawn)."""
    (index,) = run.devices
    only = run.only[index] if run.only is not None else None
    try:
        measure_device(run.plan, index, run.run_dir, lambda kind, **d: handle(kind, d), None,
                       len(run.plan.devices), only_dtypes=only)
    except (record.RecordWriteError, _WriteFailed):
        raise
    except Exception as exc:
        handle("device_failed", {"device": index, "error": f"{type(exc).__name__}: {exc}"})


@dataclass
class _Closing:
    """How a pass ended, for :func:`_close`."""

    status: str
    error: str | None
    signal_name: str | None
    failed: dict[int, str]
    in_progress: dict[int, str]
    scope_results: list[dict[str, Any]]


def missing_pairs(plan: RunPlan, measurements: list[dict[str, Any]], failed: dict[int, str],
                  in_progress: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """The plan's (device, dtype) pairs with no measurement on disk, but those of a failed device
    (a genuine failure is recorded as such and never measured again). ``state``: ``in_progress``
    (dropped when the run stopped) or ``not_started``."""
    have = {(m.get("device"), m.get("dtype")) for m in measurements}
    current = in_progress or {}
    return [{"device": d, "dtype": t, "state": "in_progress" if current.get(d) == t else "not_started"}
            for d in plan.devices if d not in failed for t in plan.dtypes if (d, t) not in have]


#: keys describing why a record is not complete: recomputed whenever it is closed
_OPEN_KEYS = ("missing", "interrupted_at", "interrupt_signal", "failure_reason")


def _close(run: _Run, c: _Closing, log: RunLog) -> RunOutcome:
    """Close the record: leftovers of the stopped pass removed, aggregates from what is on disk,
    status and (for a record that is not complete) what is missing and why; then the file index."""
    plan, writer, run_dir = run.plan, run.writer, run.run_dir
    status, error = c.status, c.error
    measurements = record.load_run(run_dir).measurements
    if run.coordination is None:  # a job's shard files may already be on rank 0's disk: left as they are
        _drop_leftovers(run_dir, measurements, c.scope_results + list(writer.manifest.get("scope_power") or []))
    aggregates = node_aggregates(measurements, plan.outlier_tolerance) + scope_aggregates(measurements, c.scope_results)
    missing = missing_pairs(plan, measurements, c.failed, c.in_progress)
    if c.failed and status == "complete":
        status = "failed"
    if missing and status == "complete":  # cannot happen unless a worker skipped work: never passed off
        status, error = "failed", f"{len(missing)} measurement(s) of the plan missing"
    try:
        log.event("finished", {"status": status, "failed_devices": c.failed, "missing": len(missing),
                               **({"error": error} if error else {})})
    except record.RecordWriteError as exc:
        if error is None:
            status, error = "failed", write_failure(exc, run_dir)
    log.close()  # before the file index: the log is part of the record
    for key in _OPEN_KEYS:
        writer.manifest.pop(key, None)
    keys: dict[str, Any] = {"finished_at": utc_now(), "aggregates": aggregates, "failed_devices": c.failed}
    if status != "complete":
        keys["missing"] = missing
    if status == "interrupted":
        keys["interrupted_at"], keys["interrupt_signal"] = keys["finished_at"], c.signal_name
    if error:
        keys["failure_reason"] = error
    if run.only is not None and writer.manifest.get("resumes"):
        last = writer.manifest["resumes"][-1]
        done = {(m.get("device"), m.get("dtype")) for m in measurements}
        last.update(finished_at=keys["finished_at"], status=status,
                    measured=[{"device": d, "dtype": t} for d, ts in run.only.items() for t in ts if (d, t) in done])
    close_error = None
    try:
        writer.finish(status, **keys)  # the writer's reserve is freed first (bench/record.py)
    except (record.RecordCloseError, record.RecordWriteError) as exc:
        why = write_failure(exc, run_dir) if isinstance(exc, OSError) else str(exc).removeprefix(f"{run_dir}: ")
        close_error = (f"the record at {run_dir} could not be closed ({why}); "
                       "its manifest is the last whole one written, status running")
    return RunOutcome(run_dir, status, measurements, aggregates, c.failed, missing, error, close_error)


def _drop_leftovers(run_dir: Path, measurements: list[dict[str, Any]], scope_power: list[dict[str, Any]]) -> None:
    """What a stopped worker left that belongs to no measurement: temporary files of a write cut
    short, and the trace of a measurement whose own file was never written (it is measured again
    on resume, trace and all). Never part of the record; removing them also frees space."""
    keep = {m.get("trace_file") for m in measurements} | {sp.get("trace_file") for sp in scope_power}
    for sub in ("", record.MEASUREMENTS_DIR, record.TRACES_DIR):
        folder = run_dir / sub
        if not folder.is_dir() or folder.is_symlink():
            continue
        for p in folder.iterdir():
            rel = p.relative_to(run_dir).as_posix()
            orphan_trace = sub == record.TRACES_DIR and rel not in keep
            cut_short = record.is_temp_name(p.name) and p.name not in record.WRITER_FILES  # the writer's own stay
            if p.is_file() and not p.is_symlink() and (cut_short or orphan_trace):
                with contextlib.suppress(OSError):
                    p.unlink()


#: how long the parent waits for a message before it looks at its workers' exit codes again
WORKER_POLL_S = 0.2
#: what reading a worker's pipe raises when its channel is over: the worker closed it or died
#: (EOF, mid-message too), or what came is not a whole message
_CHANNEL_OVER = (EOFError, OSError, pickle.UnpicklingError)


def _run_workers(run: _Run, handle: Callable[[str, dict[str, Any]], None], failed: dict[int, str],
                 barrier: Any = None) -> None:
    ctx = mp.get_context("spawn")
    devices = run.devices
    if barrier is None:  # the node's own common start (of the devices measured); a job's spans every node
        barrier = ctx.Barrier(len(devices))
    plan_dict = run.plan.to_dict()
    # one one-way pipe per worker: a worker that dies mid-message (SIGKILL, OOM) breaks only its own
    pipes = {i: ctx.Pipe(duplex=False) for i in devices}
    for _, send in pipes.values():
        _widen_pipe(send)
    channels: dict[int, Any] = {i: receive for i, (receive, _) in pipes.items()}
    # every worker gets the share of the host (threads, say) it had in the whole run, also on a resume
    procs = {i: ctx.Process(target=_worker, args=(plan_dict, i, str(run.run_dir), pipes[i][1], barrier,
                                                  len(run.plan.devices), os.getpid(),
                                                  run.only[i] if run.only is not None else None),
                            name=f"icb-bench-d{i}", daemon=True) for i in devices}
    aborted = False
    try:
        try:
            with _sigint_blocked():
                for p in procs.values():
                    p.start()
        finally:
            for _, send in pipes.values():
                send.close()  # each worker holds its own: when it is gone, its pipe reads EOF
        while True:
            _receive(channels, handle, WORKER_POLL_S)
            dead = [i for i, p in procs.items() if p.exitcode not in (None, 0)]
            for i in dead:
                _drain(channels, i, handle)  # its own last words (device_failed, write_failed) come first
            for i in dead:
                if -procs[i].exitcode in (signal.SIGTERM, signal.SIGINT) and i not in failed:
                    # a stop sent to the whole run (a scheduler's SIGTERM to the job) reaches this
                    # process too, and its handler ends the run as interrupted during this wait; a
                    # stop sent to one worker alone is that device's failure, never a way to have a
                    # disliked device measured again by --resume
                    time.sleep(WORKER_STOP_GRACE_S)
                    handle("device_failed", {"device": i, "error": f"its worker was stopped by "
                                             f"{signal.Signals(-procs[i].exitcode).name} from outside the run"})
            if dead and not aborted:
                # a worker that died without reaching its own abort (OOM kill, segfault in a vendor
                # library) must not keep its peers waiting at the common start
                barrier.abort()
                aborted = True
            for i in dead:
                if i not in failed:
                    if procs[i].exitcode == WORKER_WRITE_FAILED:
                        raise _WriteFailed(f"device {i}'s worker could not write its measurement")
                    handle("device_failed", {"device": i, "error": f"worker exited with code {procs[i].exitcode}"})
            if all(not p.is_alive() for p in procs.values()):
                break
        for i in list(channels):
            _drain(channels, i, handle)  # what the last workers said before they ended
        for i, p in procs.items():
            p.join()
            if p.exitcode not in (0, None) and i not in failed:
                handle("device_failed", {"device": i, "error": f"worker exited with code {p.exitcode}"})
    except BaseException:
        if run.stop is not None:
            run.stop.hold()  # a second Ctrl-C must not cut the stopping of the workers short
        _stop_workers(procs.values())
        raise
    finally:
        for conn in channels.values():
            conn.close()


def _stop_workers(procs: Any) -> None:
    """Every worker ends now: terminated, and killed if it has not exited within
    :data:`WORKER_STOP_S` (no device is left loaded; a measurement cut short is simply not written)."""
    procs = [p for p in procs if p.pid is not None]
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    for p in procs:
        p.join(timeout=WORKER_STOP_S)
        if p.is_alive():
            p.kill()
            p.join()


#: the pipe buffer asked for per worker (Linux; the default 64 KiB fills while the parent ships files)
WORKER_PIPE_BYTES = 1 << 20


def _widen_pipe(conn: Any) -> None:
    """Ask the kernel for a :data:`WORKER_PIPE_BYTES` buffer behind ``conn`` (a worker's sends are
    synchronous: a full pipe would stall it); where that is refused, the default buffer stays."""
    import fcntl

    with contextlib.suppress(AttributeError, OSError, ValueError):
        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, WORKER_PIPE_BYTES)


def _receive_one(channels: dict[int, Any], i: int, handle: Callable[[str, dict[str, Any]], None]) -> None:
    """Handle worker ``i``'s next message (the caller knows one is ready); at the end of its channel
    (EOF, or a message cut off by the worker's death) close it: its exit code says the rest."""
    try:
        message = channels[i].recv()
    except _CHANNEL_OVER:
        channels.pop(i).close()
        return
    kind, data = message
    handle(kind, data)


def _receive(channels: dict[int, Any], handle: Callable[[str, dict[str, Any]], None], timeout_s: float) -> None:
    """Wait up to ``timeout_s`` for any worker to speak; handle one message from each that did."""
    if not channels:
        time.sleep(timeout_s)  # every channel is over: only the exit codes are left to watch
        return
    by_conn = {conn: i for i, conn in channels.items()}
    for conn in mp_connection.wait(list(by_conn), timeout=timeout_s):
        _receive_one(channels, by_conn[conn], handle)


def _drain(channels: dict[int, Any], i: int, handle: Callable[[str, dict[str, Any]], None]) -> None:
    """Handle what worker ``i`` said and has not been read yet, up to the end of its channel (for a
    worker that has ended); stops early if nothing is there (a child of it may still hold the pipe)."""
    while i in channels and channels[i].poll(0):
        _receive_one(channels, i, handle)


__all__ = ["EXIT_INTERRUPTED", "EXIT_WRITE_FAILED", "RunLog", "RunOutcome", "continue_run", "execute",
           "missing_pairs", "new_run_id", "node_aggregates", "summarize", "write_failure"]
