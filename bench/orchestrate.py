"""Run a plan on every selected device at once and close the record.

One worker process per device (``spawn``: safe with CUDA and device plugins) with a common start
before each core phase, so the node is under full load as a rack would be. A single device runs
in-process. Workers write their own measurement files; the parent owns the manifest and, at the
end, reads the measurements back from disk — the record is the single source of truth.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as _queue
import secrets
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import record
from .inventory import host_info, hostname, utc_now
from .plan import RunPlan
from .runner import measure_device, summarize

OnEvent = Callable[[str, dict[str, Any]], None]


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


def new_run_id() -> str:
    stamp = utc_now().replace("-", "").replace(":", "").split(".")[0]
    return f"{stamp}Z-{hostname()}-{secrets.token_hex(3)}"


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
        })
    return out


def _worker(plan_dict: dict[str, Any], index: int, run_dir: str, q: Any, barrier: Any, count: int) -> None:
    plan = RunPlan.from_dict(plan_dict)

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


def execute(plan: RunPlan, run_dir: Path, on_event: OnEvent, argv: list[str] | None = None) -> RunOutcome:
    """Run ``plan``, writing the record to ``run_dir``."""
    from . import __version__

    run_dir = Path(run_dir)
    writer = record.RecordWriter(run_dir, {
        "run_id": run_dir.name,
        "created_at": utc_now(),
        "tool": {"name": "icb-bench", "version": __version__, "argv": argv or sys.argv},
        "plan": plan.to_dict(),
        "host": host_info(),
        "inventory": [],
    })
    writer.start()
    inventory: dict[int, dict[str, Any]] = {}
    failed: dict[int, str] = {}

    def handle(kind: str, data: dict[str, Any]) -> None:
        if kind == "device":
            inventory[data["device"]] = {**data["info"], "power_reader": data.get("power")}
            writer.update(inventory=[inventory[i] for i in sorted(inventory)])
        elif kind == "device_failed":
            failed[data["device"]] = data["error"]
        on_event(kind, data)

    status = "complete"
    try:
        if len(plan.devices) == 1:
            try:
                measure_device(plan, plan.devices[0], run_dir, lambda kind, **d: handle(kind, d), None, 1)
            except Exception as exc:
                handle("device_failed", {"device": plan.devices[0], "error": f"{type(exc).__name__}: {exc}"})
        else:
            _run_workers(plan, run_dir, handle, failed)
    except KeyboardInterrupt:
        status = "interrupted"
    measurements = record.load_run(run_dir).measurements
    aggregates = node_aggregates(measurements, plan.outlier_tolerance)
    if failed and status == "complete":
        status = "failed"
    writer.finish(status, finished_at=utc_now(), aggregates=aggregates, failed_devices=failed)
    return RunOutcome(run_dir, status, measurements, aggregates, failed)


def _run_workers(plan: RunPlan, run_dir: Path, handle: Callable[[str, dict[str, Any]], None], failed: dict[int, str]) -> None:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    barrier = ctx.Barrier(len(plan.devices))
    procs = {i: ctx.Process(target=_worker, args=(plan.to_dict(), i, str(run_dir), q, barrier, len(plan.devices)),
                            name=f"icb-bench-d{i}", daemon=True) for i in plan.devices}
    for p in procs.values():
        p.start()
    try:
        while True:
            try:
                kind, data = q.get(timeout=0.2)
                handle(kind, data)
                continue
            except _queue.Empty:
                pass
            if all(not p.is_alive() for p in procs.values()):
                break
        while True:  # drain what arrived after the last process ended
            try:
                kind, data = q.get_nowait()
            except _queue.Empty:
                break
            handle(kind, data)
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


__all__ = ["execute", "new_run_id", "node_aggregates", "RunOutcome", "summarize"]
