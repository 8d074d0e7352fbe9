"""The evaluation specification and the datasheet-peak table, loaded from YAML data files.

Nothing here knows a threshold: :func:`load_rules` reads ``rules/<edition>.yaml`` into typed
models and checks the file's own arithmetic (group points add up, every tier has a threshold,
fields exist in the declaration model, thresholds parse in their unit). :func:`load_peaks` reads
``rules/peaks.yaml`` and :meth:`PeakTable.match` maps a model name as a site or a driver writes it
to one entry.
"""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import units

__all__ = [
    "RulesError",
    "Condition",
    "Indicator",
    "Ruleset",
    "load_rules",
    "available_specs",
    "PeakEntry",
    "PeakTable",
    "load_peaks",
    "normalise_model",
    "Bound",
    "Plausibility",
    "load_plausibility",
]

Op = Literal["ge", "gt", "le", "lt", "is_true", "at_least_level", "one_of"]
Unit = Literal["count", "share", "money", "bandwidth", "storage", "compute", "efficiency", "number", "level"]


class RulesError(Exception):
    """A rules or peaks file is missing or inconsistent (a bug in the data, not in the input)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_Strict):
    zh: str
    en: str
    level_zh: str
    certified_suffix_zh: str
    interpretation: str | None = None


class Section(_Strict):
    zh: str
    en: str
    max: int
    weight: Fraction
    all_or_nothing: bool = False
    interpretation: str | None = None
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    @field_validator("weight", mode="before")
    @classmethod
    def _fraction(cls, v: Any) -> Fraction:
        return Fraction(str(v))


class Group(_Strict):
    id: str
    section: str
    zh: str
    en: str
    points: int


class CertRequirement(_Strict):
    of: str  # a section id or "total"
    op: Literal["ge", "gt"]
    value: int


class Review(_Strict):
    yearly_for_years: int
    then_every_years: int
    listed: int = 5


class Certification(_Strict):
    requirements: list[CertRequirement]
    mandatory_blocks: bool = True
    mandatory_interpretation: str | None = None
    exact_interpretation: str | None = None
    name_template: str
    name_interpretation: str | None = None
    review: Review


class Condition(_Strict):
    """One requirement on one declaration field (or the ratio of two)."""

    field: str | None = None
    ratio: tuple[str, str] | None = None
    op: Op
    threshold: Any = None  # raw per-tier mapping or single value; see Indicator.threshold_for
    scale: str | None = None
    tiers: list[str] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "Condition":
        if (self.field is None) == (self.ratio is None):
            raise ValueError("a condition names exactly one of `field` or `ratio`")
        if self.op == "at_least_level" and not self.scale:
            raise ValueError("at_least_level needs a `scale`")
        if self.op != "is_true" and self.threshold is None:
            raise ValueError(f"op {self.op} needs a `threshold`")
        return self

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.field,) if self.field else tuple(self.ratio or ())


class Indicator(_Strict):
    """One scored indicator: all of its conditions must hold for its points."""

    id: str
    group: str
    zh: str
    en: str
    points: int
    mandatory: bool = False
    unit: Unit | None = None
    precision: str | None = None
    claim: str | None = None
    requirement_zh: str | None = None
    conditions: list[Condition] = Field(min_length=1)
    interpretation: str | None = None

    @property
    def section(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def feeds(self) -> list[str]:
        """Declaration fields this indicator reads."""
        out: list[str] = []
        for c in self.conditions:
            out.extend(f for f in c.fields if f not in out)
        return out


class Ruleset(_Strict):
    """One edition of the evaluation specification."""

    id: str
    title_zh: str
    title_en: str
    published: str
    tiers: dict[str, Tier]
    scales: dict[str, list[str]]
    sections: dict[str, Section]
    groups: list[Group]
    certification: Certification
    indicators: list[Indicator]
    # filled in by load_rules: parsed thresholds keyed by (indicator id, condition index, tier)
    thresholds: dict[tuple[str, int, str], Any] = Field(default_factory=dict)
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    def indicator(self, ind_id: str) -> Indicator:
        for ind in self.indicators:
            if ind.id == ind_id:
                return ind
        raise KeyError(ind_id)

    def group(self, group_id: str) -> Group:
        return next(g for g in self.groups if g.id == group_id)

    def threshold(self, ind_id: str, cond_index: int, tier: str) -> Any:
        """The parsed threshold of one condition for one tier (None for is_true)."""
        return self.thresholds.get((ind_id, cond_index, tier))

    @property
    def mandatory_ids(self) -> list[str]:
        return [i.id for i in self.indicators if i.mandatory]


# ----------------------------------------------------------------------------------- loading

_RULES_PACKAGE = "icb_bench.verify"


def _rules_dir() -> Path:
    return Path(str(resources.files(_RULES_PACKAGE).joinpath("rules")))


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RulesError(f"{path}: unreadable ({exc})") from exc


@lru_cache(maxsize=None)
def available_specs() -> dict[str, Path]:
    """Every rules edition shipped with the package: ``{id: path}``."""
    out: dict[str, Path] = {}
    for p in sorted(_rules_dir().glob("*.yaml")):
        data = _read_yaml(p)
        if isinstance(data, dict) and "indicators" in data and isinstance(data.get("id"), str):
            out[data["id"]] = p
    return out


def _parse_threshold(ind: Indicator, cond: Condition, raw: Any, rules: dict[str, Any]) -> Any:
    if cond.op == "is_true":
        return None
    if cond.op == "one_of":
        if not isinstance(raw, list) or not raw:
            raise RulesError(f"{ind.id}: one_of needs a non-empty list")
        return frozenset(normalise_window(str(x)) for x in raw)
    if cond.op == "at_least_level":
        scale = rules["scales"].get(cond.scale)
        if scale is None or raw not in scale:
            raise RulesError(f"{ind.id}: level {raw!r} is not on scale {cond.scale!r}")
        return raw
    kind = {"level": "count", None: "number"}.get(ind.unit, ind.unit)
    try:
        return units.parse(kind, raw)
    except units.UnitError as exc:
        raise RulesError(f"{ind.id}: threshold {raw!r}: expected {exc}") from exc


def normalise_window(text: str) -> str:
    """A time window with spaces removed and full-width colons / dashes read as ':' and '-'."""
    t = re.sub(r"\s+", "", text)
    t = t.replace("：", ":")
    return re.sub(r"[–—~～至到]", "-", t)


@lru_cache(maxsize=None)
def load_rules(spec: str = "icb-eval/2024") -> Ruleset:
    """The ruleset of edition ``spec`` (an id such as ``icb-eval/2024``, or a path to a YAML file)."""
    path = Path(spec) if spec.endswith((".yaml", ".yml")) else available_specs().get(spec)
    if path is None:
        raise RulesError(f"no rules for specification {spec!r} (known: {sorted(available_specs())})")
    raw = _read_yaml(path)
    try:
        rules = Ruleset.model_validate(raw)
    except ValidationError as exc:
        raise RulesError(f"{path}: {exc}") from exc
    _check(rules, raw, path)
    return rules


def _check(rules: Ruleset, raw: dict[str, Any], path: Path) -> None:
    """The file's own arithmetic and references; fills ``rules.thresholds``."""
    from .declaration import field_exists  # local: declaration imports this module

    problems: list[str] = []
    ids = [i.id for i in rules.indicators]
    if len(set(ids)) != len(ids):
        problems.append("duplicate indicator ids")
    groups = {g.id: g for g in rules.groups}
    for g in rules.groups:
        pts = sum(i.points for i in rules.indicators if i.group == g.id)
        if pts != g.points:
            problems.append(f"group {g.id} ({g.zh}) states {g.points} points, its indicators sum to {pts}")
        if g.section not in rules.sections:
            problems.append(f"group {g.id}: unknown section {g.section}")
    for sid, sec in rules.sections.items():
        pts = sum(g.points for g in rules.groups if g.section == sid)
        if pts != sec.max:
            problems.append(f"section {sid} states {sec.max} points, its groups sum to {pts}")
    if sum(s.weight for s in rules.sections.values()) != 1:
        problems.append("section weights do not sum to 1")
    for ind in rules.indicators:
        if ind.group not in groups:
            problems.append(f"{ind.id}: unknown group {ind.group}")
        elif groups[ind.group].section != ind.section:
            problems.append(f"{ind.id}: group {ind.group} belongs to section {groups[ind.group].section}")
        for k, cond in enumerate(ind.conditions):
            for f in cond.fields:
                if not field_exists(f):
                    problems.append(f"{ind.id}: field {f} is not in the declaration model")
            for t in cond.tiers or []:
                if t not in rules.tiers:
                    problems.append(f"{ind.id}: unknown tier {t}")
            per_tier = cond.threshold if isinstance(cond.threshold, dict) else None
            if per_tier is not None and set(per_tier) != set(rules.tiers):
                problems.append(f"{ind.id}: thresholds for {sorted(per_tier)}, expected every tier {sorted(rules.tiers)}")
                continue
            for tier in rules.tiers:
                value = per_tier[tier] if per_tier is not None else cond.threshold
                try:
                    rules.thresholds[(ind.id, k, tier)] = _parse_threshold(ind, cond, value, raw)
                except RulesError as exc:
                    problems.append(str(exc))
    if problems:
        raise RulesError(f"{path}: " + "; ".join(problems))


# ------------------------------------------------------------------------------------- peaks


class PeakEntry(_Strict):
    """One accelerator model's dense FP16 peak with its source (an entry of the datasheet table)."""

    key: str
    name: str
    vendor: str
    domestic: bool
    fp16_tflops: Fraction
    upper_tflops: Fraction | None = None
    kind: str
    source: str
    aliases: list[str]
    #: torch devices one card shows up as; fp16_tflops/upper_tflops are always PER CARD here
    #: (load_peaks multiplies a ``per: die`` figure by this), the declaration's unit
    dies_per_card: int = Field(default=1, ge=1)
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    @property
    def device_fp16_tflops(self) -> Fraction:
        """Dense FP16 per measured device (a die when one card shows up as several)."""
        return self.fp16_tflops / self.dies_per_card

    @field_validator("fp16_tflops", "upper_tflops", mode="before")
    @classmethod
    def _fraction(cls, v: Any) -> Fraction | None:
        return None if v is None else units.parse_number(v)

    @property
    def ceiling_tflops(self) -> Fraction:
        """The highest credible dense FP16 figure (for flagging declared figures above it)."""
        return self.upper_tflops if self.upper_tflops is not None else self.fp16_tflops


_SEPARATORS = r"[\s_\-]+"


def normalise_model(name: str, separators: str = _SEPARATORS) -> str:
    """The datasheet table's normalisation: NFKC, lower case, runs of spaces/'_'/'-' as one space."""
    return re.sub(separators, " ", unicodedata.normalize("NFKC", str(name)).strip().lower())


class PeakTable:
    """Datasheet peaks with the table's one matching rule (see ``kernels/peaks.yaml``): an entry's
    key, or the single entry one of whose aliases is found in the normalised name (two: None)."""

    def __init__(self, entries: list[PeakEntry], separators: str = _SEPARATORS):
        self.entries = entries
        self.separators = separators
        self._patterns = [(e, [re.compile(a) for a in e.aliases]) for e in entries]
        self._keys = {normalise_model(e.key, separators): e for e in entries}
        self._cache: dict[str, PeakEntry | None] = {}

    def match(self, model: str | None) -> PeakEntry | None:
        """The entry for ``model`` (as a site or a driver writes it), or None (unknown or ambiguous)."""
        if not model:
            return None
        hit = self._cache.get(model, ...)
        if hit is not ...:
            return hit  # type: ignore[return-value]
        norm = normalise_model(model, self.separators)
        found = self._keys.get(norm)
        if found is None:
            hits = [e for e, pats in self._patterns if any(p.search(norm) for p in pats)]
            found = hits[0] if len(hits) == 1 else None  # two matches: do not guess
        self._cache[model] = found
        return found

    def by_key(self, key: str) -> PeakEntry | None:
        return next((e for e in self.entries if e.key == key), None)


def peaks_path() -> Path:
    """Where the one datasheet table lives: ``peaks.yaml`` of the icb_bench.kernels package, found
    through its import spec WITHOUT executing that package (verify stays torch-free)."""
    spec = importlib.util.find_spec("icb_bench.kernels")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise RulesError("the datasheet table: package icb_bench.kernels (which holds peaks.yaml) is not installed")
    return Path(locations[0]) / "peaks.yaml"


def _per_card(m: dict[str, Any]) -> dict[str, Any]:
    """A table entry's FP16 figures per card: a ``per: die``/``chip`` figure × ``dies_per_card``."""
    per = m.get("per", "card")
    if per not in ("card", "die", "chip"):
        raise RulesError(f"peaks {m.get('key')}.per: {per!r}, expected card, die or chip")
    scale = 1 if per == "card" else m.get("dies_per_card", 1)
    fp16, upper = (m.get("tflops") or {}).get("fp16"), m.get("upper_tflops")
    if scale != 1 and isinstance(scale, int) and not isinstance(scale, bool):
        fp16 = units.parse_number(fp16) * scale
        upper = None if upper is None else units.parse_number(upper) * scale
    return {"fp16_tflops": fp16, "upper_tflops": upper}


@lru_cache(maxsize=None)
def load_peaks(path: str | None = None) -> PeakTable:
    """The datasheet-peak table (:func:`peaks_path` unless ``path`` names another), FP16 entries."""
    p = Path(path) if path else peaks_path()
    raw = _read_yaml(p)
    if not isinstance(raw, dict) or raw.get("schema") != "icb-peaks/2" or not isinstance(raw.get("models"), list):
        raise RulesError(f"{p}: expected schema icb-peaks/2 with a `models` list")
    separators = str((raw.get("match") or {}).get("separators") or _SEPARATORS)
    keep = ("key", "name", "vendor", "domestic", "upper_tflops", "kind", "source", "aliases", "dies_per_card")
    try:
        entries = [PeakEntry.model_validate({**{k: m[k] for k in keep if k in m}, **_per_card(m)})
                   for m in raw["models"] if isinstance(m, dict) and (m.get("tflops") or {}).get("fp16") is not None]
    except (ValidationError, TypeError, units.UnitError) as exc:
        raise RulesError(f"{p}: {exc}") from exc
    return PeakTable(entries, separators)


# ------------------------------------------------------------------------------ plausibility


class Bound(_Strict):
    """The physically possible range of one figure (``rules/plausibility.yaml``)."""

    kind: str
    min: Fraction | None = None
    max: Fraction | None = None
    why: str
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, v: Any) -> Any:
        if isinstance(v, dict):
            v = dict(v)
            for key in ("min", "max"):
                if v.get(key) is not None:
                    v[key] = units.parse(v.get("kind", "number"), v[key])
        return v

    def problem(self, value: Fraction) -> str | None:
        """What is wrong with ``value`` (None: plausible)."""
        if self.min is not None and value < self.min:
            return f"at least {units.fmt_quantity(self.kind, self.min)} ({self.why})"
        if self.max is not None and value > self.max:
            return f"at most {units.fmt_quantity(self.kind, self.max)} ({self.why})"
        return None


class Plausibility(_Strict):
    """Bounds on declared figures (by field path; ``inventory.x`` is every item's ``x``) and on
    measured ones."""

    schema_: Literal["icb-plausibility/1"] = Field(alias="schema")
    declaration: dict[str, Bound]
    measured: dict[str, float]


@lru_cache(maxsize=None)
def load_plausibility() -> Plausibility:
    """``rules/plausibility.yaml``, validated."""
    p = _rules_dir() / "plausibility.yaml"
    try:
        return Plausibility.model_validate(_read_yaml(p))
    except (ValidationError, units.UnitError) as exc:
        raise RulesError(f"{p}: {exc}") from exc
