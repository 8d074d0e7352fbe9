"""The one datasheet table (kernels/peaks.yaml) against the names drivers and sites write, read by
verify (rules.load_peaks, torch-free) and by kernels (peaks.match_model) with one matching rule."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import pytest

from icb_bench.kernels import peaks as kpeaks
from icb_bench.verify.declaration import parse_declaration
from icb_bench.verify.inventory import domestic_share, resolve_inventory
from icb_bench.verify.rules import load_peaks, peaks_path

from .conftest import example_dict

#: name (as a driver reports it, or as a site declares it) -> key (None: deliberately unknown)
NAMES = {
    # Ascend 910 family (the launch part and its A / ProA / ProB / PremiumA variants): 256
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
    "NVIDIA H100 SXM5 80GB": "h100-sxm",
    "NVIDIA H100 PCIe": "h100-pcie",
    "NVIDIA H100 NVL": None,
    "NVIDIA H800": None,
    "NVIDIA H20": None,
    "NVIDIA H200": "h200",
    "NVIDIA H200 141GB HBM3e": "h200",
    "NVIDIA H200 NVL": None,
    "NVIDIA A100-SXM4-80GB": "a100",
    "NVIDIA A100 80GB PCIe": "a100",
    "AMD Instinct MI300X": "mi300x",
    "K100_AI": "hygon-k100-ai",
    "DCU K100": "hygon-k100",
    "MTT S4000": "mtt-s4000",
    "Iluvatar BI-V150": "iluvatar-bi-v150",
    "Kunlunxin R200": "kunlunxin-r200",
    # MetaX: the form factor decides; the bare name gets its own, lower-figure entry
    "MetaX C500": "metax-c500",
    "MetaX C500 PCIe": "metax-c500-pcie",
    "MetaX C500 OAM": "metax-c500-oam",
    "h100-sxm": "h100-sxm",  # a key is a name too
    "": None,
}


@pytest.mark.parametrize("name, key", NAMES.items())
def test_one_rule_in_both_readers(name, key):
    """verify and kernels read one file and answer every name alike (they cannot share code:
    verify must not import the torch-side package, nor kernels the scoring one)."""
    entry = load_peaks().match(name)
    assert (entry.key if entry else None) == key
    assert kpeaks.match_model(name) == key


def test_one_table_file():
    assert peaks_path().resolve() == (kpeaks.resources.files(kpeaks.__package__) / "peaks.yaml").resolve()
    assert not (peaks_path().parents[1] / "verify" / "rules" / "peaks.yaml").exists()
    for e in load_peaks().entries:  # same FP16 figure through both readers, by construction
        assert e.fp16_tflops == Fraction(str(kpeaks.load_table()[e.key]["tflops"]["fp16"]))


def test_verify_reads_the_table_without_importing_kernels():
    code = ("import sys\nfrom icb_bench.verify.rules import load_peaks\n"
            "assert load_peaks().match('NVIDIA H200').key == 'h200'\n"
            "print(','.join(m for m in ('torch', 'icb_bench.kernels') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_alias_matches_exactly_one_entry_for_its_display_name():
    for e in load_peaks().entries:
        assert load_peaks().match(e.name) is e, e.name


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
