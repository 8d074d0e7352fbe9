"""Dense datasheet peaks (kernels/peaks.yaml, the one table verify/ reads too), looked up by the
model name the driver reports.

The matching rule is the table's own (its header and ``match`` section): the name normalised
(NFKC, lower case, runs of spaces/'_'/'-' as one space), an entry's key, or the single entry one of
whose aliases is found in it; two matching entries is ambiguous and gives None. verify/rules.py
implements the same rule on the same file (it cannot import this torch-side package); a test
checks the two agree on every name they are tested with.

An unknown model or dtype gives None: the caller says "no datasheet peak", never 0 %.

Chip, die and card: each entry states ``per`` (what its figures are for) and ``dies_per_card``
(how many torch devices one card shows up as). :func:`lookup` answers per measured DEVICE (what
`bench run` measures) and carries the per-card figure alongside, so a two-die part is compared
per die and never credited a card's figure per die.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import Any

PEAK_KINDS = ("datasheet", "press", "community", "measured")
PEAK_UNITS = ("card", "die", "chip")  # die and chip: one of a card's ``dies_per_card`` devices
SCHEMA = "icb-peaks/2"


@dataclass(frozen=True)
class Peak:
    """One model's dense peak for one dtype (TFLOPS; TOPS for int8)."""

    tflops: float
    source: str
    kind: str
    model_key: str
    dtype: str = ""
    note: str = ""
    per: str = "card"  # what ``tflops`` is for: "card", or "die" for one of dies_per_card devices
    dies_per_card: int = 1
    card_tflops: float = 0.0  # the same figure per card (tflops × dies_per_card for a die)


def per_device(entry: dict[str, Any], value: float) -> tuple[float, float]:
    """(per measured device, per card) for a figure of ``entry`` stated per ``entry['per']``."""
    dies = int(entry.get("dies_per_card", 1))
    if entry.get("per", "card") == "card":
        return value / dies, value
    return value, value * dies


@functools.lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    import yaml

    doc = yaml.safe_load(resources.files(__package__).joinpath("peaks.yaml").read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("models"), list):
        raise ValueError(f"peaks.yaml: expected schema {SCHEMA} with a `models` list")
    return doc


@functools.lru_cache(maxsize=1)
def load_table() -> dict[str, dict[str, Any]]:
    """The table's models by key (validated, cached)."""
    models: dict[str, dict[str, Any]] = {}
    for entry in _document()["models"]:
        key = entry.get("key")
        if entry.get("kind") not in PEAK_KINDS:
            raise ValueError(f"peaks.yaml: {key}: kind must be one of {PEAK_KINDS}")
        for dtype, value in entry.get("tflops", {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"peaks.yaml: {key}.{dtype}: peak must be a positive number")
        if entry.get("per", "card") not in PEAK_UNITS:
            raise ValueError(f"peaks.yaml: {key}.per: {entry.get('per')!r}, expected one of {PEAK_UNITS}")
        dies = entry.get("dies_per_card", 1)
        if isinstance(dies, bool) or not isinstance(dies, int) or dies < 1:
            raise ValueError(f"peaks.yaml: {key}.dies_per_card: {dies!r}, expected a whole number >= 1")
        if key in models:
            raise ValueError(f"peaks.yaml: key {key} twice")
        models[key] = {**entry, "_patterns": [re.compile(a) for a in entry.get("aliases", [])]}
    return models


def normalise(name: str) -> str:
    """The table's normalisation of a model name."""
    sep = _document().get("match", {}).get("separators", r"[\s_\-]+")
    return re.sub(sep, " ", unicodedata.normalize("NFKC", str(name)).strip().lower())


@dataclass(frozen=True)
class Resolution:
    """How a name resolves: its normalised form, every entry that matched, the key (or None) and why."""

    name: str
    normalised: str
    hits: tuple[str, ...]
    key: str | None
    why: str


def resolve(model: str) -> Resolution:
    """The table's matching rule, with its reasons (``bench peaks --model``)."""
    models = load_table()
    name = normalise(model)
    if not name:
        return Resolution(model, name, (), None, "empty name")
    for key in models:
        if normalise(key) == name:
            return Resolution(model, name, (key,), key, "the name is an entry's key")
    hits = tuple(sorted(key for key, entry in models.items() if any(p.search(name) for p in entry["_patterns"])))
    if len(hits) == 1:
        return Resolution(model, name, hits, hits[0], f"one entry's alias is found in {name!r}")
    if hits:  # two matches: do not guess
        return Resolution(model, name, hits, None, f"ambiguous: {len(hits)} entries match ({', '.join(hits)}); no guess")
    return Resolution(model, name, (), None, f"no entry's alias is found in {name!r}")


def match_model(model: str) -> str | None:
    """The table key for a model key or driver-reported name; None if unknown or ambiguous."""
    return resolve(model).key


def lookup(model: str, dtype: str) -> Peak | None:
    """Dense peak of ``model`` (table key or driver name) for GEMM ``dtype``, or None."""
    from .dtypes import get_dtype

    key = match_model(model)
    if key is None:
        return None
    entry = load_table()[key]
    peak_key = get_dtype(dtype).peak_key
    value = entry.get("tflops", {}).get(peak_key)
    if value is None:
        return None
    device_tflops, card_tflops = per_device(entry, float(value))
    return Peak(
        tflops=device_tflops,
        source=" ".join(str(entry["source"]).split()),
        kind=str(entry["kind"]),
        model_key=key,
        dtype=dtype,
        note=" ".join(str(entry.get("note", "")).split()),
        per="card" if entry.get("dies_per_card", 1) == 1 else "die",
        dies_per_card=int(entry.get("dies_per_card", 1)),
        card_tflops=card_tflops,
    )
