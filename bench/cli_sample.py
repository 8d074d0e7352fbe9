"""`bench sample SITE.yaml --challenge NONCE`: which racks the assessment measures (registered by :func:`register`)."""

from __future__ import annotations

import io
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

__all__ = ["register", "render_table"]


class Format(str, Enum):
    table = "table"
    json = "json"


def _meters(rack, limit) -> tuple[str, str | None]:
    """The rack's meters as text, and a warning when none is stated accurate enough for the level."""
    if not rack.pdus:
        return "—", f"rack {rack.name}: no rack meter (node or device meters only) 无机柜电表"
    shown = [f"{p.type} {'?' if p.accuracy is None else f'{float(p.accuracy) * 100:g}%'}" for p in rack.pdus]
    if any(p.accuracy is None or p.accuracy > limit for p in rack.pdus):
        return ", ".join(shown), (f"rack {rack.name}: a meter's stated accuracy is unknown or worse than the level's "
                                  f"{float(limit) * 100:g}% 电表精度不足")
    return ", ".join(shown), None


def render_table(plan, site, width: int = 150) -> str:
    """The plan as Rich tables (Chinese headings with English beside), plus meter warnings."""
    from rich import box
    from rich.table import Table
    from rich.console import Console

    from icb_bench.verify.sampling import load_sampling_rules

    limit = load_sampling_rules().level(plan.level).meter_accuracy
    console = Console(file=io.StringIO(), width=width, color_system=None)
    racks = {r.name: r for r in site.racks}
    t = Table(title=f"抽样方案 sample plan — {plan.site} · 级别 level {plan.level} · nonce sha256 {plan.nonce_sha256[:12]}…",
              title_justify="left", box=box.SIMPLE_HEAVY)
    for col, just in (("序号\n#", "right"), ("机柜\nrack", "left"), ("节点\nnodes", "right"),
                      ("设备\ndevices", "left"), ("机柜电表\nrack meters", "left")):
        t.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    warnings: list[str] = []
    for i, name in enumerate(plan.racks, 1):
        rack = racks[name]
        meters, warning = _meters(rack, limit)
        if warning:
            warnings.append(warning)
        devices = ", ".join(f"{m} × {n}" for m, n in rack.devices_by_model().items())
        t.add_row(str(i), name, str(len(rack.nodes)), devices, meters)
    console.print(t)
    m = Table(title="型号覆盖 per-model coverage", title_justify="left", box=box.SIMPLE)
    for col in ("型号 model", "全站 site devices", "抽样 sampled", "要求 required", "满足 met"):
        m.add_column(col, justify="left" if col.startswith("型号") else "right")
    for ms in plan.models:
        m.add_row(ms.model, str(ms.site_devices), str(ms.sample_devices), str(ms.required),
                  "✔" if ms.sample_devices >= ms.required else "✘")
    console.print(m)
    console.print(f"机柜 racks {len(plan.racks)} / 要求 required {plan.racks_required} / 全站 site {plan.site_racks}; "
                  f"节点 nodes {len(plan.nodes)} / 要求 required {plan.nodes_required} / 全站 site {plan.site_nodes}\n"
                  f"规则 rules: {plan.rules_source}\nplan sha256 {plan.plan_sha256}", highlight=False)
    for w in warnings:
        console.print(f"warning: {w}", highlight=False, markup=False)
    return console.file.getvalue()  # type: ignore[attr-defined]


def sample_cmd(
    site_path: Path = typer.Argument(..., metavar="SITE.yaml", help="Site file (schema icb-bench/site/1)."),
    challenge: str = typer.Option(..., "--challenge", help="The assessor's random nonce, e.g. `openssl rand -hex 16`; given only once the site file is fixed."),
    level: Optional[int] = typer.Option(None, "--level", help="Sampling level of verify/rules/sampling.yaml (default: the site file's, else the rules')."),
    fmt: Format = typer.Option(Format.table, "--format", help="table or json."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the plan (JSON) to FILE, for `bench verify --sample-plan`."),
) -> None:
    """Draw the racks to measure, from the assessor's challenge (whole racks, every model covered)."""
    from .cli import fail
    from .sample import draw_sample
    from .site import SiteError, load_site

    try:
        site = load_site(site_path)
        plan = draw_sample(site, challenge, level)
    except SiteError as exc:  # SampleError too: one `error:` line per problem, all of them
        *first, last = exc.render().splitlines()
        for line in first:
            fail(line)
        raise fail(last)
    if out is not None:
        try:
            if out.exists() and out.is_dir():
                raise fail(f"--out: {out} is a directory; expected a file name such as plan.json")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(plan.to_json(), encoding="utf-8")
        except OSError as exc:
            raise fail(f"--out: {out}: cannot write ({exc.strerror or exc})")
    sys.stdout.write(plan.to_json() if fmt is Format.json else render_table(plan, site))
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add `sample` to ``app``."""
    app.command("sample")(sample_cmd)
