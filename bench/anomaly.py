"""Clock and temperature anomalies: a device running apart from its siblings on the same node.

Per node and dtype, each device's telemetry over its core phase (``telemetry.sm_clock_mhz_median``,
``telemetry.temperature_c_max``, from bench/power/sampler.py) is compared with the median of its
valid siblings' (the node's other valid devices in that dtype). The thresholds are data
(``bench/data/anomaly.yaml``). A device flagged for its clock or temperature whose throughput is
also low against its siblings gets a ``throughput_low`` entry naming the cause.

Telemetry missing (the CPU backend reports no clocks) is never a pass: the check says
``not available`` and flags nothing. Torch-free: it runs on the records' dicts alone.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any, Callable

RULES_FILE = "data/anomaly.yaml"
RULES_SCHEMA = "icb-bench/anomaly/1"


class AnomalyRulesError(ValueError):
    """The rules file is malformed (names the field, the value and what was expected)."""


@dataclass(frozen=True)
class AnomalyRules:
    min_siblings: int
    clock_min_fraction: float
    temperature_max_above_c: float
    throughput_max_fraction: float


def _field(doc: dict[str, Any], section: str, key: str, lo: float, hi: float) -> float:
    sec = doc.get(section) if section else doc
    v = sec.get(key) if isinstance(sec, dict) else None
    name = f"{section}.{key}" if section else key
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
        raise AnomalyRulesError(f"{RULES_FILE}: {name} is {v!r}, expected a number in [{lo:g}, {hi:g}]")
    return float(v)


def parse_rules(doc: Any) -> AnomalyRules:
    """The thresholds of a rules document (the YAML read), checked; AnomalyRulesError naming the field."""
    if not isinstance(doc, dict) or doc.get("schema") != RULES_SCHEMA:
        got = doc.get("schema") if isinstance(doc, dict) else doc
        raise AnomalyRulesError(f"{RULES_FILE}: schema is {got!r}, expected {RULES_SCHEMA!r}")
    return AnomalyRules(
        min_siblings=int(_field(doc, "", "min_siblings", 1, 1e6)),
        clock_min_fraction=_field(doc, "clock", "min_fraction_of_siblings", 0.0, 1.0),
        temperature_max_above_c=_field(doc, "temperature", "max_above_siblings_c", 0.0, 200.0),
        throughput_max_fraction=_field(doc, "throughput", "max_fraction_of_siblings", 0.0, 1.0),
    )


@lru_cache(maxsize=1)
def load_rules() -> AnomalyRules:
    """The thresholds of ``bench/data/anomaly.yaml``, checked."""
    import yaml

    return parse_rules(yaml.safe_load(files("icb_bench.bench").joinpath(RULES_FILE).read_text(encoding="utf-8")))


@dataclass(frozen=True)
class _Metric:
    kind: str
    key: str  # in the measurement's ``telemetry``
    unit: str
    label: str
    #: (siblings' median, rules) -> the threshold
    threshold: Callable[[float, AnomalyRules], float]
    #: (value, threshold) -> flagged
    beyond: Callable[[float, float], bool]
    rule: Callable[[AnomalyRules], str]


METRICS: tuple[_Metric, ...] = (
    _Metric("clock_low", "sm_clock_mhz_median", "MHz", "SM clock",
            lambda med, r: r.clock_min_fraction * med, lambda v, t: v < t,
            lambda r: f"< {r.clock_min_fraction:g} × siblings' median"),
    _Metric("temperature_high", "temperature_c_max", "°C", "temperature",
            lambda med, r: med + r.temperature_max_above_c, lambda v, t: v > t,
            lambda r: f"> siblings' median + {r.temperature_max_above_c:g} °C"),
)
#: what a flagged metric names as the cause of a low throughput
_CAUSE = {"clock_low": "clock", "temperature_high": "temperature"}


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 else None


def _telemetry(m: dict[str, Any], key: str) -> float | None:
    t = m.get("telemetry")
    return _number(t.get(key)) if isinstance(t, dict) else None


def _flag(m: dict[str, Any], kind: str, value: float, med: float, threshold: float, unit: str, rule: str,
          siblings: int) -> dict[str, Any]:
    return {"device": m.get("device"), "host": m.get("host"), "kind": kind, "value": value, "siblings_median": med,
            "threshold": threshold, "unit": unit, "rule": rule, "siblings": siblings}


def _check_metric(ms: list[dict[str, Any]], metric: _Metric, rules: AnomalyRules) -> tuple[list[dict[str, Any]], str]:
    have = [(m, v) for m in ms if (v := _telemetry(m, metric.key)) is not None]
    if len(have) < rules.min_siblings + 1:
        why = (f"no {metric.label} telemetry" if not have
               else f"{len(have)} of {len(ms)} devices report {metric.label} telemetry, fewer than {rules.min_siblings + 1}")
        return [], f"not available: {why}"
    flags = []
    for i, (m, v) in enumerate(have):
        sibs = [w for j, (_, w) in enumerate(have) if j != i]
        med = statistics.median(sibs)
        thr = metric.threshold(med, rules)
        if metric.beyond(v, thr):
            flags.append(_flag(m, metric.kind, v, med, thr, metric.unit, metric.rule(rules), len(sibs)))
    return flags, "checked" if len(have) == len(ms) else f"checked on {len(have)} of {len(ms)} devices"


def _throughput_flags(ms: list[dict[str, Any]], flags: list[dict[str, Any]], rules: AnomalyRules) -> list[dict[str, Any]]:
    out = []
    for m in ms:
        causes = [_CAUSE[f["kind"]] for f in flags if f["device"] == m.get("device") and f["host"] == m.get("host")]
        v = _number(m.get("tflops"))
        sibs = [w for o in ms if o is not m and (w := _number(o.get("tflops"))) is not None]
        if not causes or v is None or len(sibs) < rules.min_siblings:
            continue
        med = statistics.median(sibs)
        thr = rules.throughput_max_fraction * med
        if v < thr:
            out.append({**_flag(m, "throughput_low", v, med, thr, "TFLOPS",
                                f"< {rules.throughput_max_fraction:g} × siblings' median", len(sibs)),
                        "cause": "+".join(causes)})
    return out


def node_anomalies(measurements: list[dict[str, Any]], rules: AnomalyRules | None = None) -> dict[str, Any]:
    """For one node's valid measurements of one dtype: ``{anomalies: [{device, host, kind, value,
    siblings_median, threshold, unit, rule, siblings[, cause]}], anomaly_check: {clock, temperature}}``,
    each check ``checked`` or ``not available: why``."""
    rules = rules or load_rules()
    flags: list[dict[str, Any]] = []
    check: dict[str, str] = {}
    for metric in METRICS:
        found, check[_CAUSE[metric.kind]] = _check_metric(measurements, metric, rules)
        flags += found
    return {"anomalies": flags + _throughput_flags(measurements, flags, rules), "anomaly_check": check}


def describe(a: dict[str, Any]) -> str:
    """One line for a flag, e.g. ``SM clock 1080 MHz < 0.85 × siblings' median 1800 MHz (threshold 1530 MHz, 3 siblings)``."""
    label = {m.kind: m.label for m in METRICS}.get(a.get("kind"), "throughput")
    fmt = "{:.3g}" if a.get("unit") == "TFLOPS" else "{:.0f}"
    value, med, thr = (fmt.format(a[k]) if isinstance(a.get(k), (int, float)) else "?"
                       for k in ("value", "siblings_median", "threshold"))
    unit = a.get("unit")
    cause = f"; cause: {a['cause']}" if a.get("cause") else ""
    return f"{label} {value} {unit} {a.get('rule')} {med} {unit} (threshold {thr} {unit}, {a.get('siblings')} siblings{cause})"


__all__ = ["AnomalyRules", "AnomalyRulesError", "METRICS", "describe", "load_rules", "node_anomalies", "parse_rules"]
