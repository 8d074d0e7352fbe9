"""verify's datasheet-peak table against the names drivers and sites write, and against kernels' table.

verify stays torch-free, so kernels/peaks.yaml is read here as plain YAML (not through icb_bench.kernels).
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from icb_bench.verify.declaration import parse_declaration
from icb_bench.verify.inventory import domestic_share, resolve_inventory
from icb_bench.verify.rules import load_peaks

from .conftest import example_dict

KERNELS_PEAKS = Path(__file__).parents[2] / "kernels" / "peaks.yaml"

#: name (as a driver reports it, or as a site declares it) -> verify's key (None: deliberately unknown)
NAMES = {
    # Ascend 910 family (the launch part and its A / ProA / ProB / PremiumA variants): 256, as kernels
    "Ascend910A": "ascend-910",
    "Ascend 910ProB": "ascend-910",
    "Ascend910ProA": "ascend-910",
    "Huawei Ascend 910A": "ascend-910",
    "Ascend 910 PremiumA": "ascend-910",
    "Ascend 910": "ascend-910",
    "Ascend 910 B": "ascend-910b",
    "Ascend910B3": "ascend-910b",
    "Huawei Ascend 910B": "ascend-910b",
    "Ascend 910ProC": None,  # no such variant: stays unknown
    # NVIDIA
    "NVIDIA GH200 480GB": None,  # a different product (Grace Hopper), not an H200; no sourced figure
    "NVIDIA H100": None,  # SXM 989 / NVL / PCIe 756: the variant decides, so no guess
    "NVIDIA H100 80GB HBM3": "h100-sxm",
    "NVIDIA H100 PCIe": "h100-pcie",
    "NVIDIA H100 NVL": None,
    "NVIDIA H800": None,
    "NVIDIA H20": None,
    "NVIDIA H200": "h200",
    "NVIDIA H200 NVL": None,
    "NVIDIA A100-SXM4-80GB": "a100",
    "AMD Instinct MI300X": "mi300x",
    # MetaX: the form factor decides; the bare name gets its own, lower-figure entry
    "MetaX C500": "metax-c500",
    "MetaX C500 PCIe": "metax-c500-pcie",
    "MetaX C500 OAM": "metax-c500-oam",
}


@pytest.mark.parametrize("name, key", NAMES.items())
def test_matcher_over_driver_and_marketing_names(name, key):
    entry = load_peaks().match(name)
    assert (entry.key if entry else None) == key


def test_ambiguous_c500_credits_the_lower_figure_and_flags_above_the_higher():
    e = load_peaks().match("MetaX C500")
    assert e.domestic and e.fp16_tflops == 240 and e.ceiling_tflops == 280


def test_ascend_910_variants_count_as_domestic_without_a_flag():
    """An undeclared-domestic Ascend 910ProB inventory line made the recomputed A2.14 share 0 %."""
    data = example_dict()
    data["inventory"] = [
        {"model": "NVIDIA H100 SXM5 80GB", "count": 100, "fp16_tflops": 989, "domestic": False},
        {"model": "Ascend 910ProB", "count": 1000, "fp16_tflops": 256},
    ]
    items = resolve_inventory(parse_declaration(data))
    assert items[1].domestic and items[1].domestic_source == "datasheet"
    assert domestic_share(items, "declared") == Fraction(1000 * 256, 100 * 989 + 1000 * 256)


# ------------------------------------------------------------------ against kernels/peaks.yaml

#: verify key -> why its FP16 dense figure may differ from kernels' for the same model (none today)
ALLOWED_DIFFERENCES: dict[str, str] = {}


def _kernels_models() -> dict:
    if not KERNELS_PEAKS.is_file():
        pytest.skip(f"{KERNELS_PEAKS} absent")
    return yaml.safe_load(KERNELS_PEAKS.read_text(encoding="utf-8"))["models"]


def _kernels_match(models: dict, name: str) -> str | None:
    """kernels' own rule (kernels/peaks.py match_model): case-insensitive search, a unique hit or nothing."""
    hits = {k for k, e in models.items() for p in e.get("aliases", []) if re.search(p, name.strip(), re.IGNORECASE)}
    return hits.pop() if len(hits) == 1 else None


def test_every_kernels_model_is_known_to_verify_with_the_same_fp16_figure():
    models = _kernels_models()
    peaks = load_peaks()
    for kkey, entry in models.items():
        v = peaks.match(entry["display"])
        assert v is not None, f"kernels' {kkey} ({entry['display']!r}) is unknown to verify/rules/peaks.yaml"
        fp16 = entry.get("tflops", {}).get("fp16")
        if v.key in ALLOWED_DIFFERENCES or fp16 is None:
            continue
        assert v.fp16_tflops == Fraction(str(fp16)), f"{kkey} {fp16} vs verify {v.key} {float(v.fp16_tflops)}"


@pytest.mark.parametrize("name", sorted(NAMES))
def test_a_name_both_tables_know_has_one_fp16_figure(name):
    """Where a name matches in both tables the FP16 dense figure agrees; where only verify matches,
    the name is one a site writes rather than one a driver reports (verify normalises, kernels anchors)."""
    models = _kernels_models()
    kkey = _kernels_match(models, name)
    v = load_peaks().match(name)
    if kkey is None or v is None:
        if kkey is not None:
            pytest.fail(f"kernels knows {name!r} ({kkey}) but verify does not")
        return
    if v.key in ALLOWED_DIFFERENCES:
        return
    assert v.fp16_tflops == Fraction(str(models[kkey]["tflops"]["fp16"]))

