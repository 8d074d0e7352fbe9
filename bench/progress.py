"""Rich progress bars for `bench run`: one bar per device, with the phase and an ETA."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .plan import RunPlan

#: rough share of a dtype's time outside the core phase (search, warm-up, check), for the ETA
_OVERHEAD = 0.15


class RunDisplay:
    """Receives the workers' events; draws progress on stderr (never on stdout, which --json owns)."""

    def __init__(self, plan: RunPlan, enabled: bool = True):
        self.plan = plan
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.fields[device]}[/]"),
            TextColumn("{task.fields[phase]:<22}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
        )
        self.per_dtype = plan.duration_s * (1 + _OVERHEAD)
        self.tasks: dict[int, Any] = {}
        self.done_dtypes: dict[int, int] = {}
        self.warnings: list[str] = []

    def __enter__(self) -> "RunDisplay":
        self.progress.__enter__()
        for i in self.plan.devices:
            self.tasks[i] = self.progress.add_task("", total=self.per_dtype * len(self.plan.dtypes),
                                                   device=f"{self.plan.backend}:{i}", phase="starting")
            self.done_dtypes[i] = 0
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]
        for w in self.warnings:
            self.console.print(f"[yellow]warning:[/] {w}", highlight=False)

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        i = data.get("device")
        task = self.tasks.get(i) if i is not None else None
        base = self.done_dtypes.get(i, 0) * self.per_dtype if i is not None else 0.0
        if kind == "phase" and task is not None:
            self.progress.update(task, phase=f"{data['dtype']} {data['phase']}")
            if data["phase"] == "core":
                self.progress.update(task, completed=base + self.plan.duration_s * _OVERHEAD)
        elif kind == "progress" and task is not None:
            done = min(data["elapsed_s"], self.plan.duration_s) + self.plan.duration_s * _OVERHEAD
            self.progress.update(task, completed=base + done)
        elif kind == "measurement" and task is not None:
            self.done_dtypes[i] += 1
            self.progress.update(task, completed=self.done_dtypes[i] * self.per_dtype)
            s = data["summary"]
            if s.get("status") not in ("ok",):
                self.warnings.append(f"device {i} {s.get('dtype')}: {s.get('status')}: {s.get('error')}")
        elif kind == "device_failed":
            if task is not None:
                self.progress.update(task, phase="[red]failed[/]")
            self.warnings.append(f"device {i} failed: {data.get('error')}")
        elif kind == "warning":
            self.warnings.append(f"device {i}: {data.get('message')}")
