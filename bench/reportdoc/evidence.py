"""Sections built from the run records themselves: per device and precision, per node and rack,
the power traces, the environment fingerprint and the record's integrity."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from icb_bench.bench import record

from .labels import Words
from .model import Cell, Figure, Section, Table, gpw, interval, num, pct, tflops
from .plots import Plotter

#: traces drawn at most (a fleet has thousands): assessment-grade first, FP16 first
MAX_TRACES = 12
#: files a signing or audit step leaves in a record (shown where present)
TRUST_FILES = {"signature": ("signature.json", "signature.sig"), "audit": ("audit.json", "audit.log")}


@dataclass(frozen=True)
class Located:
    """A measurement and the single-node record directory its trace lives in."""

    m: dict[str, Any]
    run_dir: Path
    run_id: str


def leaves(rec: record.RunRecord) -> Iterator[record.RunRecord]:
    """The single-node records of a (possibly composite) record."""
    if not rec.parts:
        yield rec
    for p in rec.parts:
        yield from leaves(p)


def located(records: list[record.RunRecord]) -> list[Located]:
    out = []
    for rec in records:
        for leaf in leaves(rec):
            out += [Located(m, leaf.path, rec.run_id) for m in leaf.measurements]
    return out


def _dtype(m: dict[str, Any]) -> str:
    return str(m.get("dtype") or "?")


def _precision(m: dict[str, Any]) -> str:
    spec = m.get("dtype_spec") or {}
    inner = "/".join(str(spec[k]) for k in ("inputs", "accumulate", "output") if spec.get(k))
    return _dtype(m).upper() + (f" ({inner})" if inner else "")


def _model(m: dict[str, Any]) -> str:
    return str((m.get("device_info") or {}).get("model") or "?")


def _peak(m: dict[str, Any]) -> float | None:
    pk = m.get("peak") or {}
    return float(pk["tflops"]) if isinstance(pk.get("tflops"), (int, float)) else None


def _power_limit_w(m: dict[str, Any]) -> float | None:
    tel = m.get("telemetry") or {}
    v = tel.get("power_limit_w")
    return float(v) if isinstance(v, (int, float)) and v > 0 else None


def nominal_gflops_per_w(m: dict[str, Any]) -> float | None:
    """理论算效: datasheet peak over the device's power limit (None when either is unknown)."""
    peak, limit = _peak(m), _power_limit_w(m)
    return None if peak is None or limit is None else peak * 1000 / limit


def _outliers(records: list[record.RunRecord]) -> set[tuple[str, int, str]]:
    out = set()
    for rec in records:
        for leaf in leaves(rec):
            for a in leaf.aggregates:
                for dev in a.get("outliers") or []:
                    out.add((str(a.get("host")), dev, str(a.get("dtype"))))
    return out


def _state(m: dict[str, Any], outlier: bool, w: Words) -> Cell:
    flags = []
    if m.get("status") not in (None, "ok"):
        flags.append(f"{m.get('status')}: {m.get('error') or ''}".strip(": "))
    if m.get("grade") != "assessment":
        flags.append("smoke")
    if outlier:
        flags.append(w("outliers"))
    if m.get("unstable"):
        flags.append("unstable (CV ≥ 10%)")
    if m.get("throttled"):
        flags.append("throttled " + ",".join(m.get("throttle_reasons") or []))
    tone = "bad" if m.get("status") not in (None, "ok") or outlier else "warn" if flags else "ok"
    return Cell("; ".join(flags) or "ok", tone)  # type: ignore[arg-type]


def device_section(records: list[record.RunRecord], w: Words, plot: Plotter) -> Section:
    s = Section("devices", w("per_device"))
    outl = _outliers(records)
    t = Table([w("host"), w("device"), w("model"), w("precision"), w("shape"), w("grade"), w("measured"), w("spread"),
               w("nominal"), w("attainment"), w("power"), w("measured_eff"), w("nominal_eff"), w("state")])
    groups: dict[str, list[float]] = {}
    for loc in located(records):
        m = loc.m
        d = _dtype(m)
        st = m.get("tflops_stats") or {}
        pk = m.get("peak") or {}
        is_out = (str(m.get("host")), m.get("device"), d) in outl
        frac = m.get("fraction_of_peak")
        t.add(m.get("host"), m.get("device"), _model(m), _precision(m),
              f"{m.get('m')}×{m.get('n')}×{m.get('k')}", m.get("grade"), tflops(m.get("tflops"), d),
              interval(st.get("q1"), st.get("q3"), 1) if st.get("q1") is not None and m.get("tflops", 0) >= 0.1 else "—",
              f"{tflops(_peak(m), d)} [{pk.get('kind')}]" if _peak(m) is not None else "—",
              pct(frac), "—" if m.get("power_w") is None else f"{num(m['power_w'])} W ({m.get('power_scope')}, {m.get('power_method')})",
              gpw(m.get("gflops_per_w"), d), gpw(nominal_gflops_per_w(m), d), _state(m, is_out, w))
        if isinstance(frac, (int, float)):
            groups.setdefault(f"{_model(m)} · {d.upper()}", []).append(float(frac))
    s.tables.append(t)
    png = plot.attainment(groups)
    if png:
        s.figures.append(Figure("attainment", w("peak_fraction_chart"), png))
    s.notes += [w("nominal_eff_note"), w("smoke_note")]
    return s


def aggregates(records: list[record.RunRecord], scope: str) -> list[dict[str, Any]]:
    out = []
    for rec in records:
        out += [a for a in rec.aggregates if a.get("scope") == scope]
        for leaf in leaves(rec):
            if leaf is not rec:
                out += [a for a in leaf.aggregates if a.get("scope") == scope]
    return out


def scope_section(records: list[record.RunRecord], w: Words, plot: Plotter, required_gpw: float | None) -> Section | None:
    nodes, racks = aggregates(records, "node"), aggregates(records, "rack")
    if not nodes and not racks:
        return None
    s = Section("scopes", f"{w('per_node')} / {w('per_rack')}")
    if nodes:
        t = Table([w("host"), w("precision"), w("count"), w("measured"), w("power"), w("measured_eff"), w("scope"),
                   w("grade"), w("outliers")], caption=w("per_node"))
        for a in nodes:
            d = str(a.get("dtype"))
            t.add(a.get("host"), d.upper(), a.get("devices"), tflops(a.get("tflops"), d),
                  "—" if a.get("power_w") is None else f"{num(a['power_w'])} W", gpw(a.get("gflops_per_w"), d),
                  f"{a.get('power_scope')}/{a.get('power_method')}", a.get("grade"),
                  Cell(", ".join(map(str, a.get("outliers") or [])) or w("none"), "bad" if a.get("outliers") else ""))
        s.tables.append(t)
    if racks:
        t = Table([w("rack"), w("precision"), w("devices_valid"), w("window"), w("measured"), w("power"), w("measured_eff"),
                   w("uncertainty"), w("assurance"), w("status"), w("grade")], caption=w("per_rack"))
        for a in racks:
            d = str(a.get("dtype"))
            tone = "ok" if a.get("valid") else "bad"
            t.add(a.get("rack_id"), d.upper(), f"{a.get('devices_valid')}/{a.get('devices_expected')}",
                  "—" if a.get("window_s") is None else f"{num(a['window_s'])} s", tflops(a.get("tflops"), d),
                  "—" if a.get("power_w") is None else f"{num(a['power_w'])} W ({', '.join(a.get('power_sources') or [])})",
                  gpw(a.get("gflops_per_w"), d), interval(a.get("gflops_per_w_low"), a.get("gflops_per_w_high")),
                  a.get("assurance"), Cell(f"{a.get('status')}" + (f": {a['reason']}" if a.get("reason") else ""), tone),
                  a.get("grade"))
        s.tables.append(t)
        png = plot.racks([a for a in racks if a.get("dtype") == "fp16"], required_gpw)
        if png:
            s.figures.append(Figure("racks", w("rack_chart"), png))
    return s


def _trace_order(loc: Located) -> tuple[int, int, str]:
    m = loc.m
    return (0 if m.get("grade") == "assessment" else 1, 0 if m.get("dtype") == "fp16" else 1, str(m.get("id")))


def trace_section(records: list[record.RunRecord], w: Words, plot: Plotter, max_traces: int = MAX_TRACES) -> Section:
    s = Section("traces", w("traces"), paragraphs=[w("trace_note")])
    with_trace = sorted((x for x in located(records) if x.m.get("trace_file")), key=_trace_order)
    for loc in with_trace[:max_traces]:
        m = loc.m
        try:
            df = record.read_trace(loc.run_dir, m["trace_file"])
        except (OSError, ValueError, ImportError) as exc:  # a damaged trace is named, not fatal
            s.notes.append(f"{m.get('id')}: {m['trace_file']} unreadable ({type(exc).__name__}: {exc})")
            continue
        window = (m.get("power") or {}).get("window_s") or m.get("core_phase_s")
        title = (f"{m.get('host')}:{m.get('device')} {_model(m)} · {_precision(m)} · {tflops(m.get('tflops'), _dtype(m))} · "
                 f"{'—' if m.get('power_w') is None else num(m['power_w']) + ' W'}")
        png = plot.trace(df, float(window) if window is not None else None, title)
        if png:
            s.figures.append(Figure(f"trace-{m.get('id')}", title, png))
        if m.get("power_w") is None:
            s.notes.append(f"{m.get('id')}: {w('not_measured')} — {(m.get('power') or {}).get('note') or ''}")
    if len(with_trace) > max_traces:
        s.notes.append(w("traces_omitted", n=len(with_trace) - max_traces))
    return s


def _integrity(path: Path, manifest: dict[str, Any]) -> Cell:
    """The manifest's file index against the files on disk (sha256 of each)."""
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        return Cell("— (no file index: record not closed)", "warn")
    bad = []
    for f in files:
        p = path / str(f.get("path", ""))
        try:
            if not p.is_file() or record.sha256_file(p) != f.get("sha256"):
                bad.append(str(f.get("path")))
        except OSError:
            bad.append(str(f.get("path")))
    if bad:
        return Cell(f"{len(bad)}/{len(files)} mismatch: " + ", ".join(bad[:5]), "bad")
    return Cell(f"{len(files)}/{len(files)} sha256 ok", "ok")


def _signature(path: Path, w: Words) -> Cell | None:
    """The record's Ed25519 signature, checked (bench.sign): who signed, and whether it holds."""
    if not (path / record.SIGNATURE).is_file():
        return None
    from ..sign import check_record_integrity

    rep = check_record_integrity(path)
    if rep.signed and rep.signature_valid and rep.ok:
        return Cell(f"{rep.signer} · {rep.key_fingerprint} · ✔", "ok")
    return Cell(f"✘ {rep.first_problem or 'signature does not hold'}", "bad")


def _trust(path: Path, kind: str, w: Words) -> Cell:
    """A signature (checked) or audit file where the record has one: its own status fields, else "not checked"."""
    if kind == "signature":
        checked = _signature(path, w)
        if checked is not None:
            return checked
    for name in TRUST_FILES[kind]:
        p = path / name
        if not p.is_file():
            continue
        try:
            doc = json.loads(p.read_text(encoding="utf-8")) if p.suffix == ".json" else None
        except (OSError, ValueError):
            doc = None
        fields = [f"{k}={doc[k]}" for k in ("status", "verdict", "valid", "algorithm", "key_id", "signer")
                  if isinstance(doc, dict) and k in doc]
        return Cell(f"{name}: " + (", ".join(fields) if fields else w("not_checked")), "warn")
    return Cell(w("absent"))


def _run_status(leaf: record.RunRecord) -> Any:
    """The record's status; a running one whose writer is gone says so (bench/liveness.py)."""
    from ..liveness import dead_writer_reason

    dead = dead_writer_reason(leaf)
    return leaf.manifest.get("status") if dead is None else f"{leaf.status}: {dead}"


def environment_section(records: list[record.RunRecord], vd: dict[str, Any] | None, w: Words) -> Section:
    s = Section("environment", w("environment"))
    t = Table([w("run_id"), w("status_run"), w("tool"), w("os"), w("cpu"), w("software"), w("plan_cfg"),
               w("files_ok"), w("signature"), w("audit")])
    inv = Table([w("host"), w("device"), w("model"), "UUID", "serial", w("driver"), "memory"], caption="inventory")
    for rec in records:
        for leaf in [rec, *[x for x in leaves(rec) if x is not rec]]:
            m = leaf.manifest
            host, tool, plan = m.get("host") or {}, m.get("tool") or {}, m.get("plan") or {}
            pk = host.get("packages") or {}
            tb = host.get("torch_build") or {}
            soft = f"Python {host.get('python')}, torch {tb.get('version') or pk.get('torch')}" + (
                f", CUDA {tb['cuda']}" if tb.get("cuda") else "")
            cfg = (f"{plan.get('backend')} · {plan.get('profile')} · {num(plan.get('duration_s'))} s · seed {plan.get('seed')}"
                   if plan else (m.get("kind") or "—"))
            t.add(leaf.run_id, _run_status(leaf), f"{tool.get('name', '')} {tool.get('version', '')}".strip() or "—",
                  host.get("os") or "—", f"{host.get('cpu_model') or '—'} ×{host.get('cpu_count') or '?'}", soft, cfg,
                  _integrity(leaf.path, m), _trust(leaf.path, "signature", w), _trust(leaf.path, "audit", w))
            for d in m.get("inventory") or []:
                inv.add(host.get("hostname"), d.get("index"), d.get("model"), d.get("uuid"), d.get("serial"),
                        f"{d.get('driver_version')} / {d.get('runtime_version')}",
                        "—" if not d.get("memory_total_bytes") else f"{d['memory_total_bytes'] / 2**30:.1f} GiB")
    s.tables += [t, inv]
    plan = (vd or {}).get("sample_plan")
    nonces = [str(r.manifest["nonce"]) for r in records if r.manifest.get("nonce")]
    if plan:
        s.paragraphs.append(f"{w('nonce')}: sha256 {plan.get('nonce_sha256')} · {w('plan')} {plan.get('path')} "
                            f"(plan_sha256 {plan.get('plan_sha256')})")
    elif nonces:
        s.paragraphs.append(f"{w('nonce')}: " + ", ".join(nonces))
    else:
        s.paragraphs.append(f"{w('nonce')}: {w('absent')}")
    return s


def measured_models(records: list[record.RunRecord], w: Words) -> Section:
    """Without a declaration: the measured inventory by model, FP16 attainment and domestic flag (rows 7 and 9)."""
    s = Section("materials", f"{w('materials7')} / {w('materials9')}")
    by: dict[str, list[dict[str, Any]]] = {}
    for loc in located(records):
        if loc.m.get("dtype") == "fp16":
            by.setdefault(_model(loc.m), []).append(loc.m)
    t = Table([w("model"), w("count"), w("domestic"), w("datasheet"), w("measured"), w("attainment"), w("grade")],
              caption=w("inventory_measured"))
    dom = total = 0.0
    for model, ms in by.items():
        vals = sorted(float(m["tflops"]) for m in ms if m.get("status", "ok") == "ok" and isinstance(m.get("tflops"), (int, float)))
        med = vals[len(vals) // 2] if vals else None
        peak = _peak(ms[0])
        domestic = bool((ms[0].get("device_info") or {}).get("domestic"))
        if peak is not None:
            total += peak * len(ms)
            dom += peak * len(ms) if domestic else 0.0
        t.add(model, len(ms), w("yes") if domestic else w("no"), tflops(peak, "fp16"), tflops(med, "fp16"),
              pct(None if med is None or not peak else med / peak), ", ".join(sorted({str(m.get("grade")) for m in ms})))
    s.tables.append(t)
    s.paragraphs.append(f"{w('domestic_share')} ({w('domestic_basis')}): {pct(dom / total) if total else '—'}")
    return s
