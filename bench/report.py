"""Human-readable summary of a run (Rich tables), in the vocabulary of Chinese assessors with English beside it."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from .anomaly import describe


def _f(x: Any, fmt: str = "{:.1f}") -> str:
    return "—" if x is None else fmt.format(x)


#: throughput units, largest first, as (name, factor from TFLOPS); a table takes the first in which
#: none of its figures prints as 0.00 (a CPU's 0.004 TFLOPS is 4.00 GFLOPS, not zero)
THROUGHPUT_UNITS: tuple[tuple[str, float], ...] = (("TFLOPS", 1.0), ("GFLOPS", 1e3), ("MFLOPS", 1e6))


def throughput_unit(tflops: list[Any]) -> tuple[str, float]:
    """The unit (name, factor from TFLOPS) a column of these figures is printed in."""
    positive = [x for x in tflops if isinstance(x, (int, float)) and x > 0]
    for name, factor in THROUGHPUT_UNITS:
        if all(round(x * factor, 2) > 0 for x in positive):
            return name, factor
    return THROUGHPUT_UNITS[-1]


def _scaled(tflops: Any, factor: float) -> str:
    return _f(None if tflops is None else tflops * factor, "{:.2f}")


def _inputs_text(plan: dict[str, Any]) -> str:
    """Where the inputs came from: the challenge nonce (the assessor's, or drawn by the harness), or a seed."""
    ch = (plan.get("extra") or {}).get("challenge") if isinstance(plan.get("extra"), dict) else None
    if isinstance(ch, dict) and ch.get("mode") == "challenge" and ch.get("nonce"):
        who = "assessor" if ch.get("source") == "assessor" else ch.get("source") or "?"
        return f"challenge: {str(ch['nonce'])[:16]}… ({who})"
    return f"seed: {plan.get('seed')}"


def _anomaly_cell(g: dict[str, Any]) -> str:
    """The node table's anomaly column: the devices flagged, else whether the check could run at all."""
    flagged = g.get("anomalies") or []
    if flagged:
        return ", ".join(f"{x.get('device')}: {x.get('kind')}" for x in flagged)
    check = g.get("anomaly_check")
    if not isinstance(check, dict):
        return "—"  # a record from before the check
    missing = [k for k, v in check.items() if str(v).startswith("not available")]
    return "none" if not missing else ("not available" if len(missing) == len(check) else f"none ({', '.join(missing)} n/a)")


def print_run(payload: dict[str, Any], console: Console | None = None) -> None:
    import sys

    # a pipe or log file gets a wide table rather than Rich's 80-column default
    console = console or Console(width=None if sys.stdout.isatty() else 150)
    plan = payload.get("plan") or {}
    console.print(f"[bold]run[/] {payload['run_id']}  [dim]{payload['run_dir']}[/]  status: {payload['status']}  "
                  f"profile: {plan.get('profile')}  core phase (planned): {_f(plan.get('duration_s'))} s per dtype  "
                  f"{_inputs_text(plan)}",
                  highlight=False)
    writer = payload.get("writer") or {}
    if writer.get("text"):  # a running record: its writer alive, or gone (the run died)
        style = "yellow" if writer.get("state") == "alive" else "bold red"
        console.print(f"[{style}]writer:[/] {writer['text']}", highlight=False, soft_wrap=True)
    warnings: list[str] = []
    ms = payload["measurements"]
    devices: dict[str, dict[str, Any]] = {}
    for m in ms:
        devices.setdefault(f"{m.get('host')}:{m['device']}", m)
    d = Table(title="设备 / devices", title_justify="left")
    for col in ("设备 device", "型号 model", "功率口径 power scope/method"):
        d.add_column(col, overflow="fold")
    for name, m in devices.items():
        pm = m.get("power_method")
        d.add_row(name, str(m.get("model") or "—"),
                  f"{m.get('power_scope')}/{pm}" if pm not in (None, "none") else "not measured 未测")
    console.print(d)
    unit, factor = throughput_unit([m.get("tflops") for m in ms])
    t = Table(title="实测算力 / measured dense GEMM (FLOPs = 2·m·n·k; median of the core phase)", title_justify="left")
    for col, just in (("设备\ndevice", "left"), ("精度\ndtype", "left"), ("m×n×k", "left"), (f"{unit}\nmedian", "right"),
                      ("IQR", "right"), ("峰值占比\n% peak", "right"), ("功率\nW", "right"),
                      ("算效\nGFLOPS/W", "right"), ("等级\ngrade", "left"), ("正确\nvalid", "left")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for m in ms:
        shape = f"{m['m']}×{m['n']}×{m['k']}" if m.get("m") else "—"
        frac = m.get("fraction_of_peak")
        t.add_row(
            f"{m.get('host')}:{m['device']}", m["dtype"], shape,
            _scaled(m.get("tflops"), factor), _scaled(m.get("tflops_iqr"), factor),
            ("n/a" if m.get("tflops") else "—") if frac is None else f"{frac * 100:.1f}%",
            _f(m.get("power_w")), _f(m.get("gflops_per_w"), "{:.1f}"),
            m.get("grade") or "—", "✔" if m.get("valid") else f"✘ {m.get('status')}",
        )
        where = f"{m.get('host')}:{m['device']} {m['dtype']}"
        if m.get("tflops") and frac is None:
            warnings.append(f"{where}: no datasheet peak for {m.get('model')!r} (% of peak not shown, not 0 %)")
        if m.get("timing_consistent") is False:
            warnings.append(f"{where}: wall-clock throughput is {m.get('wall_vs_events', 0):.3f}× the device-timer median "
                            "(beyond ±5 %): check the device timer or gaps between batches")
        if m.get("unstable"):
            warnings.append(f"{where}: unstable (CV {m.get('tflops_cv', 0) * 100:.1f}% ≥ 10%)")
        if m.get("throttled"):
            warnings.append(f"{where}: power/thermal throttling in the window ({', '.join(m.get('throttle_reasons') or [])})")
        if m.get("error"):
            warnings.append(f"{where}: {m['status']}: {m['error'].splitlines()[0]}")
        if m.get("grade") == "smoke" and m.get("tflops"):
            warnings.append(f"{where}: measured core phase {m.get('core_phase_s', 0):.1f} s < 60 s: "
                            "graded 'smoke', does not count towards a verdict")
    console.print(t)
    aggs = payload.get("aggregates") or []
    nodes = [g for g in aggs if g.get("scope") == "node"]
    if nodes:
        a_unit, a_factor = throughput_unit([g.get("tflops") for g in nodes])
        a = Table(title="节点合计 / node totals (valid devices)", title_justify="left")
        for col in ("节点\nnode", "精度\ndtype", "设备数\ndevices", f"{a_unit}\nsum", "功率 W", "算效\nGFLOPS/W",
                    "功率口径\npower scope", "离群\noutliers", "时钟/温度异常\nclock/temp anomalies"):
            a.add_column(col)
        for g in nodes:
            scope = "sum of devices" if g.get("power_scope") == "device" else f"{g.get('power_scope')} ({g.get('power_source')})"
            a.add_row(str(g.get("host") or "—"), g["dtype"], str(g["devices"]), _scaled(g.get("tflops"), a_factor),
                      _f(g.get("power_w")), _f(g.get("gflops_per_w")), f"{scope}/{g.get('power_method')}",
                      ", ".join(map(str, g.get("outliers") or [])) or "—", _anomaly_cell(g))
            warnings += [f"device {g.get('host')}:{x.get('device')} {g['dtype']}: {describe(x)}" for x in g.get("anomalies") or []]
            for o in g.get("outliers") or []:
                warnings.append(f"device {g.get('host')}:{o} {g['dtype']}: below (1 − {g.get('outlier_tolerance')}) × the node median")
        console.print(a)
    racks = [g for g in aggs if g.get("scope") == "rack"]
    if racks:
        r_unit, r_factor = throughput_unit([g.get("tflops") for g in racks])
        r = Table(title="单机架算效 / per-rack efficiency (Σ FLOPs in the rack's common core phase ÷ its energy)",
                  title_justify="left")
        for col in ("机架\nrack", "精度\ndtype", "设备\ndevices", f"{r_unit}", "功率 W", "空载 W\nidle",
                    "算效\nGFLOPS/W", "范围 (≈95%)\nrange", "来源\nassurance", "读数\nreadings", "状态\nstatus"):
            r.add_column(col)
        for g in racks:
            lo, hi = g.get("gflops_per_w_low"), g.get("gflops_per_w_high")
            inside = g.get("readings_inside")
            r.add_row(str(g.get("rack_id")), g["dtype"], f"{g.get('devices')}/{g.get('devices_expected')}",
                      _scaled(g.get("tflops"), r_factor), _f(g.get("power_w")), _f(g.get("idle_power_w")),
                      _f(g.get("gflops_per_w"), "{:.3g}"), "—" if lo is None or hi is None else f"{lo:.3g}–{hi:.3g}",
                      str(g.get("assurance") or "—"), "—" if inside is None else str(inside),
                      ("✔ " if g.get("valid") else "✘ ") + str(g.get("status")))
            if g.get("reason"):
                warnings.append(f"rack {g.get('rack_id')} {g['dtype']}: {g['reason']}")
        console.print(r)
    runs = [g for g in aggs if g.get("scope") == "run"]
    if runs:
        u_unit, u_factor = throughput_unit([g.get("tflops") for g in runs])
        u = Table(title="全部节点 / whole run (valid devices)", title_justify="left")
        for col in ("精度\ndtype", "节点\nnodes", "设备 valid/all\ndevices", f"{u_unit}\nsum"):
            u.add_column(col)
        for g in runs:
            u.add_row(g["dtype"], str(g.get("nodes")), f"{g.get('devices_valid')}/{g.get('devices')}",
                      _scaled(g.get("tflops"), u_factor))
        console.print(u)
    for n in payload.get("missing_nodes") or []:
        warnings.append(f"node {n.get('name')} (rank {n.get('rank')}, {n.get('devices')} device(s)) is missing: "
                        f"{n.get('reason')}; {n.get('measurements_received', 0)} of its measurements reached rank 0")
    for sk in payload.get("core_phase_skew") or []:
        if sk.get("nodes_out_of_bound"):
            warnings.append(f"{sk['dtype']}: core phases of {', '.join(sk['nodes_out_of_bound'])} not within 0.8 s of the "
                            f"common start/end (spread {sk.get('begin_spread_s', 0):.2f} s): their rack figures are not aligned")
    for d, e in (payload.get("failed_devices") or {}).items():
        warnings.append(f"device {d} failed: {e}")
    for w in warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
