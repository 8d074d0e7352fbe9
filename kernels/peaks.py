"""Dense datasheet peaks (kernels/peaks.yaml, the one table verify/ reads too), looked up by the
model name the driver reports.

The matching rule is the table's own (its header and ``match`` section): the name normalised
(NFKC, lower case, runs of spaces/'_'/'-' as one space), an entry's key, or the single entry one of
whose aliases is found in it; two matching entries is ambiguous and gives None. verify/rules.py
implements the same rule on the same file (it cannot import this torch-side package); a test
checks the two agree on every name they are tested with.

An unknown model or dtype gives None: the caller says "no datasheet peak", never 0 %.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import Any

PEAK_KINDS = ("datasheet", "press", "community", "measured")
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
        if key in models:
            raise ValueError(f"peaks.yaml: key {key} twice")
        models[key] = {**entry, "_patterns": [re.compile(a) for a in entry.get("aliases", [])]}
    return models


def normalise(name: str) -> str:
    """The table's normalisation of a model name."""
    sep = _document().get("match", {}).get("separators", r"[\s_\-]+")
    return re.sub(sep, " ", unicodedata.normalize("NFKC", str(name)).strip().lower())


def match_model(model: str) -> str | None:
    """The table key for a model key or driver-reported name; None if unknown or ambiguous."""
    models = load_table()
    name = normalise(model)
    if not name:
        return None
    for key in models:
        if normalise(key) == name:
            return key
    hits = {key for key, entry in models.items() if any(p.search(name) for p in entry["_patterns"])}
    return hits.pop() if len(hits) == 1 else None  # two matches: do not guess


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
    return Peak(
        tflops=float(value),
        source=" ".join(str(entry["source"]).split()),
        kind=str(entry["kind"]),
        model_key=key,
        dtype=dtype,
        note=" ".join(str(entry.get("note", "")).split()),
    )
