"""Dense datasheet peaks (kernels/peaks.yaml), looked up by the model name the driver reports.

An unknown model or dtype gives None: the caller says "no datasheet peak", never 0 %.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

PEAK_KINDS = ("datasheet", "press", "community", "measured")


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
def load_table() -> dict[str, dict[str, Any]]:
    """The parsed peaks.yaml ``models`` mapping (validated, cached)."""
    import yaml

    text = resources.files(__package__).joinpath("peaks.yaml").read_text(encoding="utf-8")
    models = yaml.safe_load(text)["models"]
    for key, entry in models.items():
        if entry.get("kind") not in PEAK_KINDS:
            raise ValueError(f"peaks.yaml: {key}: kind must be one of {PEAK_KINDS}")
        for dtype, value in entry.get("tflops", {}).items():
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"peaks.yaml: {key}.{dtype}: peak must be a positive number")
        for pattern in entry.get("aliases", []):
            re.compile(pattern)
    return models


def match_model(model: str) -> str | None:
    """The table key for a model key or driver-reported name; None if unknown or ambiguous."""
    models = load_table()
    name = model.strip()
    if name.lower() in models:
        return name.lower()
    hits = {
        key
        for key, entry in models.items()
        for pattern in entry.get("aliases", [])
        if re.search(pattern, name, re.IGNORECASE)
    }
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
        source=str(entry["source"]),
        kind=str(entry["kind"]),
        model_key=key,
        dtype=dtype,
        note=" ".join(str(entry.get("note", "")).split()),
    )
