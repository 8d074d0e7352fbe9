"""`bench peaks [--json] [--model TEXT]`: the datasheet-peak table (kernels/peaks.yaml) as it is read.

Every model's dense figures per dtype with their unit (TFLOPS; INT8 TOPS), what one figure is for
(card, die or chip), the figure per measured device, the source and its kind. ``--model`` shows how
a name as a driver prints it resolves under the table's one matching rule, or why it does not.

Exit codes: 0 listed / the name resolves; 1 the name resolves to no entry (unknown or ambiguous).
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any, Optional

import typer

from icb_bench.kernels import peaks as kpeaks

__all__ = ["register", "peaks_payload", "model_payload", "render_table", "render_model"]

#: dtype order of the listing (the GEMM dtypes `bench run` measures)
DTYPE_ORDER = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")
SCHEMA = "icb-bench/peaks/1"


def _unit(dtype: str) -> str:
    return "TOPS" if dtype == "int8" else "TFLOPS"


def _figures(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One entry's figures per dtype: as stated (per ``per``), per measured device, per card."""
    out = {}
    for dtype in sorted(entry.get("tflops", {}), key=lambda d: DTYPE_ORDER.index(d) if d in DTYPE_ORDER else 99):
        value = float(entry["tflops"][dtype])
        device, card = kpeaks.per_device(entry, value)
        out[dtype] = {"value": value, "unit": _unit(dtype), "per_device": device, "per_card": card}
    return out


def _entry_payload(key: str, entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": key,
        "name": entry.get("name"),
        "vendor": entry.get("vendor"),
        "domestic": bool(entry.get("domestic")),
        "kind": entry.get("kind"),
        "source": " ".join(str(entry.get("source", "")).split()),
        "note": " ".join(str(entry.get("note", "")).split()) or None,
        "per": entry.get("per", "card"),
        "dies_per_card": int(entry.get("dies_per_card", 1)),
        "upper_tflops": entry.get("upper_tflops"),
        "figures": _figures(entry),
    }


def peaks_payload() -> dict[str, Any]:
    """The whole table, every model with its dense figures (what `--json` prints)."""
    return {"schema": SCHEMA, "models": [_entry_payload(k, e) for k, e in kpeaks.load_table().items()]}


def model_payload(name: str) -> dict[str, Any]:
    """How ``name`` resolves: normalised form, matching entries, the key (or None) and why."""
    r = kpeaks.resolve(name)
    entry = kpeaks.load_table().get(r.key) if r.key else None
    return {"schema": SCHEMA, "name": name, "normalised": r.normalised, "matches": list(r.hits), "key": r.key,
            "why": r.why, "model": _entry_payload(r.key, entry) if entry is not None and r.key else None}


def _fmt(v: float) -> str:
    return f"{v:g}"


def _console(width: int) -> Any:
    from rich.console import Console

    return Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)


def render_table(payload: dict[str, Any], width: int = 180) -> str:
    """The listing with Chinese/English headings, one row per model and dtype."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    console = _console(width)
    t = Table(title="数据手册峰值 / datasheet dense peaks (kernels/peaks.yaml)", title_justify="left", box=box.SIMPLE)
    for col, just in (("型号 model", "left"), ("精度 dtype", "left"), ("峰值 peak", "right"), ("单位 unit", "left"),
                      ("每 per", "left"), ("每设备 per device", "right"), ("来源类别 kind", "left"),
                      ("来源 source", "left")):
        t.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    for m in payload["models"]:
        per = m["per"] if m["dies_per_card"] == 1 else f"{m['per']} ({m['dies_per_card']} dies/card)"
        for i, (dtype, f) in enumerate(m["figures"].items()):
            first = i == 0
            t.add_row(escape(f"{m['name']} [{m['key']}]") if first else "", dtype, _fmt(f["value"]), f["unit"], per,
                      _fmt(f["per_device"]), m["kind"] if first else "", escape(m["source"]) if first else "")
    console.print(t)
    console.print("稠密峰值 dense only (no sparse figures); 无数据 a dtype not listed has no datasheet peak, never 0",
                  highlight=False)
    return console.file.getvalue()


def render_model(payload: dict[str, Any], width: int = 140) -> str:
    """How one name resolves, in words."""
    lines = [f"名称 name: {payload['name']!r} → 归一化 normalised {payload['normalised']!r}",
             f"匹配 matches: {', '.join(payload['matches']) or '(none)'}",
             f"结果 result: {payload['key'] or 'no datasheet peak'} — {payload['why']}"]
    m = payload["model"]
    if m is not None:
        lines.append(f"型号 model: {m['name']} ({m['vendor']}, {'domestic 国产' if m['domestic'] else 'not domestic'}); "
                     f"每 per {m['per']}, {m['dies_per_card']} device(s) per card; 来源类别 kind {m['kind']}")
        for dtype, f in m["figures"].items():
            lines.append(f"  {dtype}: {_fmt(f['value'])} {f['unit']} per {m['per']} = {_fmt(f['per_device'])} per device,"
                         f" {_fmt(f['per_card'])} per card")
        lines.append(f"来源 source: {m['source']}")
        if m["note"]:
            lines.append(f"注 note: {m['note']}")
    return "\n".join(lines) + "\n"


def peaks_cmd(
    json_out: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    model: Optional[str] = typer.Option(None, "--model", help="a model name as a driver prints it (e.g. 'Ascend910B3'): how it resolves, or why it does not"),
) -> None:
    """List the datasheet-peak table: every model's dense figures per dtype, with unit, per (card/die), source and kind."""
    if model is not None:
        payload = model_payload(model)
        text = json.dumps(payload, ensure_ascii=False, indent=2) + "\n" if json_out else render_model(payload)
        sys.stdout.write(text)
        sys.stdout.flush()
        if payload["key"] is None:
            raise typer.Exit(1)
        return
    payload = peaks_payload()
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n" if json_out else render_table(payload))
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add `peaks` to ``app``."""
    app.command("peaks")(peaks_cmd)
