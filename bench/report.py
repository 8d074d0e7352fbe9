"""Human-readable summary of a run (Rich tables), in the vocabulary of Chinese assessors with English beside it."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _f(x: Any, fmt: str = "{:.1f}") -> str:
    return "—" if x is None else fmt.format(x)


def print_run(payload: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    plan = payload.get("plan") or {}
    console.print(f"[bold]run[/] {payload['run_id']}  [dim]{payload['run_dir']}[/]  status: {payload['status']}  "
                  f"profile: {plan.get('profile')}  core phase: {plan.get('duration_s')} s  seed: {plan.get('seed')}",
                  highlight=False)
    t = Table(title="实测算力 / measured GEMM throughput (dense, 2·m·n·k)", show_lines=False)
    for col in ("设备 device", "型号 model", "精度 dtype", "m×n×k", "实测算力 TFLOPS (median)", "IQR",
                "峰值占比 % of peak", "功率 W", "能耗 J", "实测算效 GFLOPS/W", "功率口径 scope/method", "等级 grade", "正确 valid"):
        t.add_column(col, overflow="fold")
    warnings: list[str] = []
    for m in payload["measurements"]:
        shape = f"{m['m']}×{m['n']}×{m['k']}" if m.get("m") else "—"
        frac = m.get("fraction_of_peak")
        t.add_row(
            f"{m.get('host')}:{m['device']}", str(m.get("model") or "—"), m["dtype"], shape,
            _f(m.get("tflops"), "{:.2f}"), _f(m.get("tflops_iqr"), "{:.2f}"),
            "no datasheet peak" if frac is None and m.get("tflops") else _f(None if frac is None else frac * 100, "{:.1f}%"),
            _f(m.get("power_w")), _f(m.get("energy_j"), "{:.0f}"), _f(m.get("gflops_per_w"), "{:.1f}"),
            f"{m.get('power_scope') or '—'}/{m.get('power_method')}" if m.get("power_method") != "none" else "not measured",
            m.get("grade") or "—", "✔" if m.get("valid") else f"✘ {m.get('status')}",
        )
        if m.get("unstable"):
            warnings.append(f"{m.get('host')}:{m['device']} {m['dtype']}: unstable (CV {m.get('tflops_cv', 0) * 100:.1f}% ≥ 10%)")
        if m.get("error"):
            warnings.append(f"{m.get('host')}:{m['device']} {m['dtype']}: {m['status']}: {m['error'].splitlines()[0]}")
        if m.get("grade") == "smoke" and m.get("tflops"):
            warnings.append(f"{m.get('host')}:{m['device']} {m['dtype']}: core phase {m.get('core_phase_s', 0):.1f} s < 60 s: "
                            "graded 'smoke', does not count towards a verdict")
    console.print(t)
    if payload.get("aggregates"):
        a = Table(title="节点合计 / node totals (valid devices)")
        for col in ("精度 dtype", "设备数 devices", "实测算力 TFLOPS (sum)", "功率 W (sum)", "实测算效 GFLOPS/W", "口径 scope/method", "离群 outliers"):
            a.add_column(col)
        for g in payload["aggregates"]:
            a.add_row(g["dtype"], str(g["devices"]), _f(g.get("tflops"), "{:.2f}"), _f(g.get("power_w")),
                      _f(g.get("gflops_per_w")), f"{g.get('power_scope')}/{g.get('power_method')} ({g.get('power_note')})",
                      ", ".join(map(str, g.get("outliers") or [])) or "none")
            for o in g.get("outliers") or []:
                warnings.append(f"device {o} {g['dtype']}: below (1 − {g.get('outlier_tolerance')}) × the node median")
        console.print(a)
    for d, e in (payload.get("failed_devices") or {}).items():
        warnings.append(f"device {d} failed: {e}")
    for w in warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
