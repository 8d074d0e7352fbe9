"""Declared against measured: `bench run` records replace declared figures, claim by claim.

Records are read only through :mod:`icb_bench.bench.record` (the one module that owns the format;
it imports no torch). Three claims are checked:

* **A2.7 FP16 peak** — measured devices are matched to the declared inventory by model; per model
  the median of the devices' sustained FP16 throughput, its spread and a distribution-free 95 %
  confidence interval of that median. Site figures: *declared*; *nominal* (标称算力: datasheet
  peak × declared count, for models whose every sampled device was correct and reached at least
  ``min_efficiency`` of the datasheet); *measured* (实测算力: per-device median × count).
* **A2.14 domestic share** — recomputed from the inventory's nominal FP16 compute by vendor.
* **A1.7 per-rack GFLOPS/W** — from rack-scope records only (median over racks); node- or
  device-scope efficiencies are reported with their scope and never scored as rack figures.

A claim is CONFIRMED only when the lower bound of the figure clears declared × (1 − tolerance).
Only measurements and aggregates whose ``grade`` is ``assessment`` count; the others (``smoke``,
or no grade at all) are listed in ``smoke`` and ignored. Also listed (in ``excluded``, with the
reason) and ignored: aggregates not marked ``valid: true``, and measurements whose wall-clock
cross-check failed (``timing_consistent: false``: the device timer and the host clock disagree by
more than 5 %; a record without the key predates the check and is not a failure).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Literal

from .declaration import Declaration
from .inventory import ResolvedItem, resolve_inventory
from .rules import PeakTable, Ruleset, load_peaks, load_rules, normalise_model
from .scoring import Override, Scorecard, score

__all__ = [
    "CONFIRMED",
    "NOT_CONFIRMED",
    "INCONCLUSIVE",
    "Claim",
    "ModelFigure",
    "SiteFigures",
    "EfficiencyFigure",
    "ScopeSummary",
    "Verification",
    "verify",
    "load_records",
    "median_ci",
]

CONFIRMED = "CONFIRMED"
NOT_CONFIRMED = "NOT CONFIRMED"
INCONCLUSIVE = "INCONCLUSIVE"
FP16 = "fp16"
Basis = Literal["nominal", "measured"]


# --------------------------------------------------------------------------------- results


@dataclass
class ModelFigure:
    """One declared inventory line with what was measured of its model."""

    model: str
    key: str
    count: int
    declared_tflops: Fraction | None
    datasheet_tflops: float | None
    datasheet_source: str | None
    datasheet_kind: str | None
    domestic: bool
    sampled: int = 0
    invalid: int = 0
    below_efficiency: int = 0
    median_tflops: float | None = None
    q1_tflops: float | None = None
    q3_tflops: float | None = None
    min_tflops: float | None = None
    max_tflops: float | None = None
    ci_low_tflops: float | None = None
    ci_high_tflops: float | None = None
    credited: bool = False
    reason: str | None = None
    above_datasheet: bool = False

    @property
    def attainment(self) -> float | None:
        """算力达成率 per device: measured median ÷ datasheet peak."""
        if self.median_tflops is None or not self.datasheet_tflops:
            return None
        return self.median_tflops / self.datasheet_tflops

    @property
    def nominal_pflops(self) -> float:
        return self.datasheet_tflops * self.count / 1000 if self.credited and self.datasheet_tflops else 0.0

    @property
    def measured_pflops(self) -> float:
        return (self.median_tflops or 0.0) * self.count / 1000


@dataclass
class SiteFigures:
    """Site FP16 peak three ways (PFLOPS, FP16 dense)."""

    declared: Fraction | None
    nominal: float
    measured: float
    measured_low: float
    measured_high: float
    attainment: float | None  # 算力达成率: measured ÷ nominal over the sampled models with a datasheet
    complete: bool  # every inventory line was sampled


@dataclass
class EfficiencyFigure:
    """A GFLOPS/W figure with the scope its power was measured at."""

    scope: str  # rack | node | device
    run_id: str
    label: str  # rack id, host or measurement id
    gflops_per_w: float
    tflops: float | None
    power_w: float | None
    nominal_gflops_per_w: float | None = None  # 理论算效: datasheet FLOPS over the same power


@dataclass
class ScopeSummary:
    """GFLOPS/W figures below rack scope (node, device): shown with their scope, never scored for A1.7."""

    scope: str
    n: int
    median: float
    q1: float
    q3: float
    min: float
    max: float


@dataclass
class Claim:
    """One declared figure checked against a measurement."""

    id: str
    field: str
    zh: str
    en: str
    unit: str
    precision: str | None
    declared: Fraction | None
    figure: float | None
    low: float | None
    high: float | None
    source: str
    required: float | None  # declared × (1 − tolerance)
    status: str
    reason: str


@dataclass
class Verification:
    """`bench verify`'s result: the scorecard with measured figures, and the claims."""

    scorecard: Scorecard
    claims: list[Claim]
    models: list[ModelFigure]
    site: SiteFigures
    basis: str
    tolerance: Fraction
    min_efficiency: Fraction
    domestic_share: Fraction | None
    racks: list[EfficiencyFigure]
    lower_scopes: list[ScopeSummary]
    smoke: list[str] = field(default_factory=list)  # not assessment-grade (smoke, or no grade): ignored
    excluded: list[str] = field(default_factory=list)  # assessment-grade but not trusted, with the reason: ignored
    unmatched: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)

    @property
    def all_confirmed(self) -> bool:
        return bool(self.claims) and all(c.status == CONFIRMED for c in self.claims)


# ------------------------------------------------------------------------------ statistics


def _quantile(xs: list[float], q: float) -> float:
    """Linear-interpolated quantile of sorted ``xs`` (numpy's default)."""
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median_ci(xs: list[float], z: float = 1.96) -> tuple[float, float]:
    """Distribution-free ~95 % confidence interval of the median of sorted ``xs`` (order statistics)."""
    n = len(xs)
    half = z * math.sqrt(n) / 2
    lo = max(int(math.floor(n / 2 - half)), 1)
    hi = min(int(math.ceil(n / 2 + 1 + half)), n)
    return xs[lo - 1], xs[hi - 1]


def _exact(x: float | None) -> Fraction | None:
    """A float as the exact decimal it prints as (989.0 -> 989, 196.5 -> 393/2)."""
    return None if x is None else Fraction(repr(float(x)))


#: Magnitude beyond any physical figure a record holds (TFLOPS, W, J, GFLOPS/W): treated as missing.
_ABSURD = 1e15


def _num(v: Any) -> float | None:
    """A finite, physically possible number from a record field, or None."""
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) and abs(f) < _ABSURD else None


# ------------------------------------------------------------------------------ collection


def load_records(paths: Iterable[str | Path]) -> list[Any]:
    """`bench run` records named directly or found one level below (raises RecordError)."""
    from icb_bench.bench.record import find_runs

    return find_runs(paths)


@dataclass
class _Sample:
    tflops: float | None
    q1: float | None
    q3: float | None
    valid: bool
    peak: float | None
    peak_source: str | None
    peak_kind: str | None
    domestic: bool | None
    model: str


def _key(v: Any) -> str | None:
    """A hashable identifier from a record field of any type (None stays None)."""
    return None if v is None else str(v)


def _device_id(run_id: str, m: dict[str, Any]) -> tuple[Any, ...]:
    info = m.get("device_info") or {}
    uuid = info.get("uuid") if isinstance(info, dict) else None
    if uuid:
        return ("uuid", str(uuid))
    return ("dev", _key(m.get("host")), _key(m.get("device")), run_id if not m.get("host") else "")


def _collect(records: Iterable[Any], peaks: PeakTable):
    """One pass over every measurement and aggregate (linear in their number)."""
    samples: dict[tuple[Any, ...], tuple[str, _Sample]] = {}
    smoke: list[str] = []
    excluded: list[str] = []
    racks: list[EfficiencyFigure] = []
    lower: dict[str, list[float]] = {}
    runs: list[str] = []
    key_of: dict[str, str] = {}

    for rec in records:
        run_id = rec.run_id
        runs.append(run_id)
        peaks_in_run: dict[Any, list[float]] = {}
        for m in rec.measurements:
            if not isinstance(m, dict):
                continue
            grade = m.get("grade")
            if grade != "assessment":
                smoke.append(f"{run_id}/{m.get('id', '?')} ({grade or 'no grade'})")
                continue
            if m.get("timing_consistent") is False:  # a missing key (older records) is not a failure
                ratio = _num(m.get("wall_vs_events"))
                excluded.append(f"{run_id}/{m.get('id', '?')}: device timer and wall clock disagree "
                                f"(wall_vs_events={'?' if ratio is None else f'{ratio:.3g}'})")
                continue
            dtype = m.get("dtype")
            eff = _num(m.get("gflops_per_w"))
            scope = m.get("power_scope")
            if dtype == FP16 and eff is not None and m.get("valid") is True:
                if scope == "rack":
                    label = str(m.get("rack_id") or m.get("id", "?"))
                    racks.append(EfficiencyFigure("rack", run_id, label, eff, _num(m.get("tflops")), _num(m.get("power_w"))))
                else:
                    lower.setdefault(str(scope or "device"), []).append(eff)
            if dtype != FP16:
                continue
            info = m.get("device_info") if isinstance(m.get("device_info"), dict) else {}
            model = str(info.get("model") or "unknown")
            if model not in key_of:
                entry = peaks.match(model)
                key_of[model] = entry.key if entry else normalise_model(model)
            stats = m.get("tflops_stats") if isinstance(m.get("tflops_stats"), dict) else {}
            peak = m.get("peak") if isinstance(m.get("peak"), dict) else {}
            tflops = _num(m.get("tflops"))
            ok = m.get("valid") is True and m.get("status", "ok") == "ok" and tflops is not None
            sample = _Sample(
                tflops=tflops,
                q1=_num(stats.get("q1")),
                q3=_num(stats.get("q3")),
                valid=ok,
                peak=_num(peak.get("tflops")),
                peak_source=_key(peak.get("source")),
                peak_kind=_key(peak.get("kind")),
                domestic=info.get("domestic") if isinstance(info.get("domestic"), bool) else None,
                model=key_of[model],
            )
            samples[_device_id(run_id, m)] = (model, sample)  # a later record of a device replaces it
            if sample.peak is not None:
                peaks_in_run.setdefault(_key(m.get("rack_id")), []).append(sample.peak)
        raw_aggs = rec.manifest.get("aggregates") if isinstance(rec.manifest, dict) else None
        aggs = [a for a in raw_aggs if isinstance(a, dict) and a.get("dtype") == FP16] if isinstance(raw_aggs, list) else []
        n_rack_aggs = sum(1 for a in aggs if (a.get("power_scope") or a.get("scope")) == "rack")
        for agg in aggs:
            where = f"{run_id}/aggregate {agg.get('scope', '?')}" + (f" {agg['rack_id']}" if agg.get("rack_id") else "")
            if agg.get("grade") != "assessment":  # no grade is not assessment grade
                smoke.append(f"{where} ({agg.get('grade') or 'no grade'})")
                continue
            valid = agg.get("valid")
            if valid is not True:
                why = "valid is false" if valid is False else "no `valid` flag" if valid is None else f"valid is {valid!r}, not true"
                excluded.append(f"{where}: {why}")
                continue
            power = _num(agg.get("power_w"))
            tflops = _num(agg.get("tflops"))
            eff = _num(agg.get("gflops_per_w"))
            if eff is None and power and tflops is not None:
                eff = tflops * 1000 / power
            if eff is None:
                continue
            scope = str(agg.get("power_scope") or agg.get("scope") or "node")
            if scope == "device":
                continue  # a node's sum of device readings: the device measurements already show it
            label = str(agg.get("rack_id") or agg.get("host") or agg.get("scope") or "?")
            if scope != "rack":
                lower.setdefault(scope, []).append(eff)
                continue
            fig = EfficiencyFigure(scope, run_id, label, eff, tflops, power)
            rid = _key(agg.get("rack_id"))
            rack_peaks = peaks_in_run.get(rid) if rid in peaks_in_run else (peaks_in_run.get(None) if n_rack_aggs == 1 else None)
            n_dev = agg.get("devices")
            n_dev = len(n_dev) if isinstance(n_dev, list) else n_dev
            if power and rack_peaks and (n_dev is None or n_dev == len(rack_peaks)):
                fig.nominal_gflops_per_w = sum(rack_peaks) * 1000 / power  # 理论算效
            racks.append(fig)
    return samples, smoke, excluded, racks, lower, runs


# ------------------------------------------------------------------------------ the claims


def _claim_status(declared: Fraction, low: float | None, high: float | None, tol: Fraction, complete: bool) -> tuple[str, str]:
    required = declared * (1 - tol)
    if low is None or high is None:
        return INCONCLUSIVE, "no assessment-grade measurement"
    if _exact(low) >= required:
        return CONFIRMED, "lower bound clears declared × (1 − tolerance)"
    if not complete:
        return INCONCLUSIVE, "not every declared model was measured, and what was does not confirm the declaration"
    if _exact(high) < required:
        return NOT_CONFIRMED, "upper bound is below declared × (1 − tolerance)"
    return INCONCLUSIVE, "the measurement's uncertainty straddles declared × (1 − tolerance)"


def verify(
    decl: Declaration,
    records: Iterable[Any],
    *,
    rules: Ruleset | None = None,
    basis: Basis = "nominal",
    tolerance: Fraction | float = Fraction(5, 100),
    min_efficiency: Fraction | float = Fraction(1, 2),
    mandatory_block: bool = True,
    peaks: PeakTable | None = None,
    certified_on: Any = None,
) -> Verification:
    """Replace declared FP16 peak, domestic share and rack efficiency by figures from ``records``
    (`bench run` records as read by :func:`load_records`) and score; each claim is checked."""
    if basis not in ("nominal", "measured"):
        raise ValueError(f"basis must be nominal or measured, not {basis!r}")
    tol = Fraction(str(tolerance)) if isinstance(tolerance, float) else Fraction(tolerance)
    min_eff = Fraction(str(min_efficiency)) if isinstance(min_efficiency, float) else Fraction(min_efficiency)
    if not 0 <= tol < 1:
        raise ValueError("tolerance must be in [0, 1)")
    if not 0 <= min_eff <= 1:
        raise ValueError("min_efficiency must be in [0, 1]")
    rules = rules or load_rules(decl.spec)
    peaks = peaks or load_peaks()
    items = resolve_inventory(decl, peaks)
    samples, smoke, excluded, racks, lower_raw, runs = _collect(records, peaks)
    lower = []
    for scope_name, effs in sorted(lower_raw.items()):
        effs.sort()
        lower.append(ScopeSummary(scope_name, len(effs), _quantile(effs, 0.5), _quantile(effs, 0.25),
                                  _quantile(effs, 0.75), effs[0], effs[-1]))

    # ---- per-model statistics (one pass to group, one sort per model)
    by_key: dict[str, list[_Sample]] = {}
    raw_model_of: dict[str, str] = {}
    for model, s in samples.values():
        by_key.setdefault(s.model, []).append(s)
        raw_model_of.setdefault(s.model, model)
    inv_keys = {it.key for it in items}
    unmatched = {raw_model_of[k]: len(v) for k, v in by_key.items() if k not in inv_keys}

    models = [_model_figure(it, by_key.get(it.key, []), float(min_eff)) for it in items]
    notes: list[str] = []
    for raw_model, n in unmatched.items():
        notes.append(f"{n} measured device(s) of model {raw_model!r} match no declared inventory line; not counted")

    # ---- site FP16 figures
    complete = bool(models) and all(mf.sampled for mf in models)
    nominal_exact = sum(
        (_exact(mf.datasheet_tflops) * mf.count for mf in models if mf.credited and mf.datasheet_tflops), Fraction(0)
    ) / 1000
    nominal = float(nominal_exact)
    measured = sum(mf.measured_pflops for mf in models)
    m_low = sum((mf.ci_low_tflops or 0.0) * mf.count / 1000 for mf in models)
    m_high = sum((mf.ci_high_tflops or 0.0) * mf.count / 1000 for mf in models)
    att_num = sum(mf.measured_pflops for mf in models if mf.median_tflops is not None and mf.datasheet_tflops)
    att_den = sum(mf.datasheet_tflops * mf.count / 1000 for mf in models if mf.median_tflops is not None and mf.datasheet_tflops)
    site = SiteFigures(
        declared=decl.technical.fp16_peak,
        nominal=nominal,
        measured=measured,
        measured_low=m_low,
        measured_high=m_high,
        attainment=att_num / att_den if att_den else None,
        complete=complete,
    )
    any_sampled = any(mf.sampled for mf in models)
    overrides: dict[str, Override] = {}
    claims: list[Claim] = []

    # A2.7
    ind = rules.indicator("A2.7") if _has(rules, "A2.7") else None
    figure, low, high = (nominal, nominal, nominal) if basis == "nominal" else (measured, m_low, m_high)
    if any_sampled:
        note = None if complete else "unmeasured models contribute nothing: " + ", ".join(mf.model for mf in models if not mf.sampled)
        overrides["technical.fp16_peak"] = Override(nominal_exact if basis == "nominal" else _exact(figure), basis, note)
    claims.append(
        _claim(
            "A2.7", "technical.fp16_peak", ind, "compute", decl.technical.fp16_peak,
            figure if any_sampled else None, low if any_sampled else None, high if any_sampled else None,
            basis, tol, complete,
        )
    )
    flagged = [mf for mf in models if mf.above_datasheet]
    for mf in flagged:
        notes.append(
            f"{mf.model}: declared {float(mf.declared_tflops or 0):g} TFLOPS per device is above the datasheet dense FP16 peak "
            f"{mf.datasheet_tflops:g} TFLOPS ({mf.datasheet_kind}: {mf.datasheet_source}) — sparse or FP8 passed off as FP16?"
        )

    # A2.14 domestic share, from the inventory's nominal compute by vendor
    share = _domestic_share(models)
    ind = rules.indicator("A2.14") if _has(rules, "A2.14") else None
    if share is not None:
        overrides["technical.domestic_compute_share"] = Override(share, "nominal")
    if decl.technical.domestic_compute_share is not None or share is not None:
        sh = float(share) if share is not None else None
        claim = _claim("A2.14", "technical.domestic_compute_share", ind, "share", decl.technical.domestic_compute_share,
                       sh, sh, sh, "nominal", tol, True)
        if share is None:
            claim.reason = "cannot recompute: no inventory, or a model with neither a datasheet nor a declared per-device figure"
        claims.append(claim)
    for it in items:
        if it.domestic_source == "assumed":
            notes.append(f"{it.model}: vendor unknown to the datasheet table and no `domestic` flag; counted as not domestic")

    # A1.7 per-rack efficiency, rack scope only
    ind = rules.indicator("A1.7") if _has(rules, "A1.7") else None
    if racks:
        effs = sorted(r.gflops_per_w for r in racks)
        med = _quantile(effs, 0.5)
        lo, hi = median_ci(effs) if len(effs) > 1 else (effs[0], effs[0])
        overrides["industrial_value.rack_efficiency"] = Override(
            _exact(med), "measured", f"median of {len(effs)} rack-scope measurement(s)"
        )
        claims.append(_claim("A1.7", "industrial_value.rack_efficiency", ind, "efficiency",
                             decl.industrial_value.rack_efficiency, med, lo, hi, "measured", tol, True))
    else:
        reason = "no rack-scope power measurement"
        if lower:
            shown = ", ".join(f"{x.n} {x.scope}-scope (median {x.median:.1f} GFLOPS/W)" for x in lower)
            reason += f"; {shown} shown, not scored as a rack figure"
        claims.append(Claim("A1.7", "industrial_value.rack_efficiency", *_names(ind), "efficiency", "fp16",
                            decl.industrial_value.rack_efficiency, None, None, None, "declared", None, INCONCLUSIVE, reason))

    card = score(decl, rules, mandatory_block=mandatory_block, overrides=overrides, certified_on=certified_on)
    return Verification(
        scorecard=card,
        claims=claims,
        models=models,
        site=site,
        basis=basis,
        tolerance=tol,
        min_efficiency=min_eff,
        domestic_share=share,
        racks=racks,
        lower_scopes=lower,
        smoke=smoke,
        excluded=excluded,
        unmatched=unmatched,
        notes=notes,
        runs=runs,
    )


def _has(rules: Ruleset, ind_id: str) -> bool:
    return any(i.id == ind_id for i in rules.indicators)


def _names(ind: Any) -> tuple[str, str]:
    return (ind.zh, ind.en) if ind is not None else ("", "")


def _claim(
    ind_id: str, field_path: str, ind: Any, unit: str, declared: Fraction | None,
    figure: float | None, low: float | None, high: float | None, source: str, tol: Fraction, complete: bool,
) -> Claim:
    zh, en = _names(ind)
    precision = getattr(ind, "precision", None)
    if declared is None:
        status, reason = INCONCLUSIVE, "nothing declared to confirm; the figure found is scored"
        required = None
    else:
        status, reason = _claim_status(declared, low, high, tol, complete)
        required = float(declared * (1 - tol))
    return Claim(ind_id, field_path, zh, en, unit, precision, declared, figure, low, high, source, required, status, reason)


def _model_figure(it: ResolvedItem, samples: list[_Sample], min_eff: float) -> ModelFigure:
    """Statistics of one inventory line's sampled devices; whether its nominal figure is credited."""
    peaks_seen = sorted(s.peak for s in samples if s.peak is not None)
    src = next((s for s in samples if s.peak is not None), None)
    if peaks_seen:
        ds, ds_src, ds_kind = _quantile(peaks_seen, 0.5), src.peak_source, src.peak_kind  # type: ignore[union-attr]
    elif it.datasheet is not None:
        ds, ds_src, ds_kind = float(it.datasheet.fp16_tflops), it.datasheet.source, it.datasheet.kind
    else:
        ds = ds_src = ds_kind = None
    domestic = it.domestic
    if it.domestic_source == "assumed":
        flags = {s.domestic for s in samples if s.domestic is not None}
        if len(flags) == 1:
            domestic = flags.pop()
    ceilings = [c for c in (it.datasheet.ceiling_tflops if it.datasheet else None, _exact(ds)) if c is not None]
    above = it.declared_tflops is not None and bool(ceilings) and it.declared_tflops > max(ceilings)
    mf = ModelFigure(
        model=it.model,
        key=it.key,
        count=it.count,
        declared_tflops=it.declared_tflops,
        datasheet_tflops=ds,
        datasheet_source=ds_src,
        datasheet_kind=ds_kind,
        domestic=domestic,
        above_datasheet=bool(above),
    )
    if not samples:
        mf.reason = "not measured"
        return mf
    mf.sampled = len(samples)
    good = sorted(s.tflops for s in samples if s.valid)  # type: ignore[misc]
    mf.invalid = len(samples) - len(good)
    if ds:
        mf.below_efficiency = sum(1 for v in good if v < min_eff * ds)
    if good:
        mf.median_tflops = _quantile(good, 0.5)
        mf.q1_tflops, mf.q3_tflops = _quantile(good, 0.25), _quantile(good, 0.75)
        mf.min_tflops, mf.max_tflops = good[0], good[-1]
        if len(good) == 1:
            only = next(s for s in samples if s.valid)
            mf.ci_low_tflops = only.q1 if only.q1 is not None else good[0]
            mf.ci_high_tflops = only.q3 if only.q3 is not None else good[0]
        else:
            mf.ci_low_tflops, mf.ci_high_tflops = median_ci(good)
    if ds is None:
        mf.reason = "no datasheet peak for this model"
    elif mf.invalid:
        mf.reason = f"{mf.invalid} of {mf.sampled} sampled device(s) failed correctness"
    elif mf.below_efficiency:
        mf.reason = f"{mf.below_efficiency} of {mf.sampled} sampled device(s) below {min_eff:.0%} of the datasheet peak"
    else:
        mf.credited = True
    return mf


def _domestic_share(models: list[ModelFigure]) -> Fraction | None:
    """Domestic part of the inventory's nominal FP16 compute (datasheet × count; declared where no datasheet)."""
    total = dom = Fraction(0)
    for mf in models:
        per = _exact(mf.datasheet_tflops) if mf.datasheet_tflops is not None else mf.declared_tflops
        if per is None:
            return None
        total += per * mf.count
        if mf.domestic:
            dom += per * mf.count
    return dom / total if total else None
