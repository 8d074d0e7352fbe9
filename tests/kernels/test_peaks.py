"""Datasheet peak table and lookup by driver-reported model name."""

from __future__ import annotations

import pytest

from icb_bench.kernels.dtypes import DTYPES
from icb_bench.kernels.peaks import PEAK_KINDS, Peak, load_table, lookup, match_model


def test_table_loads_from_package_data() -> None:
    table = load_table()
    for key in (
        "h100-sxm", "h100-pcie", "h200", "a100", "l40s", "mi300x", "ascend-910", "ascend-910b",
        "mtt-s4000", "hygon-k100", "hygon-k100-ai", "metax-c500-pcie", "metax-c500-oam", "metax-c500",
        "iluvatar-bi-v100", "iluvatar-bi-v150", "kunlunxin-r200",
    ):
        assert key in table, key
    for key, entry in table.items():
        assert entry["kind"] in PEAK_KINDS and entry["source"], key
        assert set(entry["tflops"]) <= {d.peak_key for d in DTYPES.values()}, key


@pytest.mark.parametrize(
    "driver_name, dtype, tflops, key",
    [
        ("NVIDIA H100 80GB HBM3", "fp16", 989, "h100-sxm"),
        ("NVIDIA H100 80GB HBM3", "fp32", 67, "h100-sxm"),
        ("NVIDIA H100 80GB HBM3", "tf32", 494.5, "h100-sxm"),
        ("NVIDIA H100 80GB HBM3", "bf16", 989, "h100-sxm"),
        ("NVIDIA H100 80GB HBM3", "fp8", 1979, "h100-sxm"),
        ("NVIDIA H100 80GB HBM3", "int8", 1979, "h100-sxm"),
        ("NVIDIA H100 PCIe", "fp16", 756, "h100-pcie"),
        ("NVIDIA H200", "fp16", 989, "h200"),
        ("NVIDIA A100-SXM4-80GB", "fp16", 312, "a100"),
        ("NVIDIA A100-SXM4-40GB", "int8", 624, "a100"),
        ("NVIDIA A100 80GB PCIe", "fp32", 19.5, "a100"),
        ("NVIDIA L40S", "fp8", 733, "l40s"),
        ("AMD Instinct MI300X", "fp16", 1300, "mi300x"),
        ("Ascend910B3", "fp16", 313, "ascend-910b"),
        ("Ascend910A", "fp16", 256, "ascend-910"),
        ("K100_AI", "fp16", 196, "hygon-k100-ai"),
        ("DCU K100", "fp16", 100, "hygon-k100"),
        ("MTT S4000", "fp16", 100, "mtt-s4000"),
        ("Iluvatar BI-V150", "fp16", 196.5, "iluvatar-bi-v150"),
        ("h100-sxm", "fp16", 989, "h100-sxm"),  # table key works too
        ("MetaX C500", "fp16", 240, "metax-c500"),  # form factor unstated: the lower figure (one table, one rule)
        ("ＮＶＩＤＩＡ H100 PCIe", "fp16", 756, "h100-pcie"),  # full-width letters: NFKC
    ],
)
def test_lookup_aliases(driver_name: str, dtype: str, tflops: float, key: str) -> None:
    peak = lookup(driver_name, dtype)
    assert isinstance(peak, Peak)
    assert peak.tflops == tflops and peak.model_key == key and peak.dtype == dtype
    assert peak.source and peak.kind in ("datasheet", "press", "community", "measured")


def test_dense_not_sparse() -> None:
    assert lookup("NVIDIA H100 80GB HBM3", "fp16").tflops == 989  # not the 1979 sparse figure


@pytest.mark.parametrize(
    "name", ["NVIDIA H100 NVL", "NVIDIA H800", "NVIDIA H200 NVL", "NVIDIA H20", "NVIDIA H100", "NVIDIA GH200 480GB",
             "Foo GPU", ""]
)
def test_unknown_models_return_none(name: str) -> None:
    assert match_model(name) is None
    assert lookup(name, "fp16") is None


def test_missing_dtype_returns_none() -> None:
    assert lookup("NVIDIA A100-SXM4-80GB", "fp8") is None  # A100 has no FP8
    assert lookup("Ascend910B3", "bf16") is None  # domestic: FP16 only, no BF16 assumed
    with pytest.raises(ValueError):
        lookup("NVIDIA H200", "fp64")


def test_kinds_recorded() -> None:
    assert lookup("NVIDIA H200", "fp16").kind == "datasheet"
    assert lookup("Ascend910B1", "fp16").kind == "measured"
    assert "280" in lookup("Ascend910B1", "fp16").note
    assert lookup("K100_AI", "fp16").kind == "community"
