"""Rich progress for `bench run`: one bar per device for the whole run and, while a device searches
for its GEMM shape, a second row for the search (tries done of total), each with an ETA."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from .inventory import hostname
from .plan import RunPlan

#: rough share of a dtype's time after the core phase (correctness check, writing), for the ETA
_OVERHEAD = 0.15


class EtaColumn(ProgressColumn):
    """Time left from the display's own estimate (``task.fields["eta_at"]``, a deadline on the
    display's clock), not from Rich's speed: one bar spans phases of very different pace."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self.clock = clock

    def render(self, task: Task) -> Text:
        eta_at = task.fields.get("eta_at")
        if eta_at is None:
            return Text("ETA -:--:--")
        return Text(f"ETA {timedelta(seconds=int(max(0.0, eta_at - self.clock()) + 0.5))}")


@dataclass
class _Device:
    """What the display knows of one device's progress."""

    task: Any
    started_s: float
    dtypes_done: int = 0
    phase: str = "starting"
    phase_started_s: float = 0.0
    core_elapsed_s: float = 0.0
    search_done: int = 0
    search_total: int = 0
    #: how long each finished shape search took on this device (estimates the later ones)
    search_s: list[float] = field(default_factory=list)


class RunDisplay:
    """Receives the workers' events; draws progress on stderr (never on stdout, which --json owns)."""

    def __init__(self, plan: RunPlan, enabled: bool = True, clock: Callable[[], float] = time.monotonic):
        self.plan = plan
        self.enabled = enabled
        self.clock = clock
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.fields[device]}[/]"),
            TextColumn("{task.fields[phase]:<22}"),
            BarColumn(),
            TextColumn("{task.fields[count]:>6}"),
            TimeElapsedColumn(),
            EtaColumn(clock),
            console=self.console,
            disable=not enabled,
        )
        self.devices: dict[int, _Device] = {}
        self.search_tasks: dict[int, Any] = {}
        self.warnings: list[str] = []

    @staticmethod
    def device_label(index: int) -> str:
        """``host:index``, the name the tables of `bench run` / `bench show` use."""
        return f"{hostname()}:{index}"

    def __enter__(self) -> "RunDisplay":
        self.progress.__enter__()
        now = self.clock()
        for i in self.plan.devices:
            label = self.device_label(i)
            task = self.progress.add_task("", total=1.0, device=label, phase="starting", count="0%", eta_at=None)
            self.devices[i] = _Device(task, started_s=now, phase_started_s=now)
            self.search_tasks[i] = self.progress.add_task("", total=1.0, visible=False, device=label,
                                                          phase="", count="", eta_at=None)
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]
        for w in self.warnings:
            self.console.print(f"[yellow]warning:[/] {w}", highlight=False)

    # -- estimates ------------------------------------------------------------------------

    def _after_search_s(self) -> float:
        """Warm-up, core phase and check of one dtype."""
        return self.plan.warmup_ms / 1e3 + self.plan.duration_s * (1 + _OVERHEAD)

    def _search_left_s(self, d: _Device, now: float) -> float | None:
        """Time left in the running search, from the pace of its finished tries (None before one)."""
        if d.search_done <= 0 or d.search_total <= 0:
            return None
        elapsed = now - d.phase_started_s
        return elapsed / d.search_done * (d.search_total - d.search_done)

    def _search_estimate_s(self, d: _Device, now: float) -> float | None:
        """A whole search on this device: the mean of the finished ones, else the running one's projection."""
        if self.plan.shape is not None:
            return 0.0
        if d.search_s:
            return statistics.fmean(d.search_s)
        left = self._search_left_s(d, now)
        return None if left is None else (now - d.phase_started_s) + left

    def _left_s(self, d: _Device, now: float) -> float | None:
        """Time left on this device for the whole run (None while nothing supports an estimate)."""
        later = len(self.plan.dtypes) - d.dtypes_done - 1  # dtypes after the current one
        if later < 0:
            return 0.0
        per_search = self._search_estimate_s(d, now)
        if d.phase in ("search", "starting"):
            # the running search's own pace once a try finished; before that, earlier searches'
            current = self._search_left_s(d, now) if d.phase == "search" else None
            if current is None and self.plan.shape is None and d.search_s:
                current = statistics.fmean(d.search_s) - (now - d.phase_started_s if d.phase == "search" else 0.0)
            elif current is None and self.plan.shape is not None:
                current = 0.0
            if current is None:
                return None
            current = max(0.0, current) + self._after_search_s()
        elif d.phase == "core":
            current = max(0.0, self.plan.duration_s - d.core_elapsed_s) + self.plan.duration_s * _OVERHEAD
        elif d.phase == "check":
            current = self.plan.duration_s * _OVERHEAD
        else:  # warm-up, waiting for the common start
            current = self._after_search_s()
        if later and per_search is None:
            return None
        return current + later * ((per_search or 0.0) + self._after_search_s())

    def _refresh(self, i: int) -> None:
        d = self.devices[i]
        now = self.clock()
        left = self._left_s(d, now)
        elapsed = now - d.started_s
        fraction = elapsed / (elapsed + left) if left is not None and elapsed + left > 0 else None
        if fraction is None:  # at least the dtypes already measured
            fraction = d.dtypes_done / max(1, len(self.plan.dtypes))
        self.progress.update(d.task, completed=fraction, count=f"{fraction * 100:.0f}%",
                             eta_at=None if left is None else now + left)
        search = self.search_tasks[i]
        if d.phase == "search" and d.search_total:
            s_left = self._search_left_s(d, now)
            self.progress.update(search, visible=True, completed=d.search_done / d.search_total,
                                 phase=f"  shape search {self.plan.dtypes[d.dtypes_done]}",
                                 count=f"{d.search_done}/{d.search_total}",
                                 eta_at=None if s_left is None else now + s_left)
        else:
            self.progress.update(search, visible=False)

    # -- events ---------------------------------------------------------------------------

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        i = data.get("device")
        d = self.devices.get(i) if i is not None else None
        now = self.clock()
        if kind == "phase" and d is not None:
            if d.phase == "search" and data["phase"] != "search" and d.search_total:
                d.search_s.append(now - d.phase_started_s)
            d.phase, d.phase_started_s = data["phase"], now
            if d.phase == "search":
                d.search_done = d.search_total = 0
                self.progress.reset(self.search_tasks[i], total=1.0, visible=False)  # restarts its clock
            d.core_elapsed_s = 0.0
            self.progress.update(d.task, phase=f"{data['dtype']} {data['phase']}")
        elif kind == "search" and d is not None:
            d.search_done, d.search_total = int(data["done"]), int(data["total"])
        elif kind == "progress" and d is not None:
            d.core_elapsed_s = float(data["elapsed_s"])
        elif kind == "measurement" and d is not None:
            d.dtypes_done += 1
            d.phase = "done" if d.dtypes_done >= len(self.plan.dtypes) else "starting"
            d.search_done = d.search_total = 0
            s = data["summary"]
            if s.get("status") not in ("ok",):
                self.warnings.append(f"{self.device_label(i)} {s.get('dtype')}: {s.get('status')}: {s.get('error')}")
        elif kind == "device_failed":
            if d is not None:
                self.progress.update(d.task, phase="[red]failed[/]", eta_at=None)
                d.phase = "failed"
            self.warnings.append(f"{self.device_label(i)} failed: {data.get('error')}" if i is not None
                                 else f"a device failed: {data.get('error')}")
            if d is not None:
                self.progress.update(self.search_tasks[i], visible=False)
            return
        elif kind == "warning":
            self.warnings.append(f"{self.device_label(i)}: {data.get('message')}" if i is not None
                                 else str(data.get("message")))
        if d is not None and d.phase not in ("failed",):
            self._refresh(i)
