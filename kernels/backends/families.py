"""Which vendor a device is and what one device stands for (chip, die or card): data, one place.

Families that present ``torch.cuda`` (NVIDIA, AMD and Hygon on ROCm/HIP, MetaX MXMACA, Iluvatar
CoreX, Kunlunxin's CUDA-compatible stack) are told apart by the device name and the runtime torch
was built for (``torch.version.hip``). Which vendors count as domestic stays in
:data:`~icb_bench.kernels.backends.base.DOMESTIC_VENDORS`; this module only names the vendor.

Device names the patterns are written against (where each was seen):

- Hygon DCU (HIP): ``K100_AI``, ``DCU K100``, ``Z100L``; the Card Series of ``hy-smi`` reads
  ``K500SM_AI`` (SwanLab's Hygon collector docstring) or ``DCU …`` (gpustack's Hygon rocm-smi sample).
- MetaX: ``MetaX C500``, ``MetaX N260`` (mx-smi tables in ms-swift's and AIMA's docs/tests); the raw
  chip id ``MXC500`` (a MetaX collector's name normalisation).
- Iluvatar: ``Iluvatar BI-V100``, ``Iluvatar MR-V100`` (ixsmi samples, gpu_tools / gpustack).
- Kunlunxin: ``P800 OAM`` (xpu-smi -m sample), R200/R300 by product name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class VendorRule:
    """A device-name pattern for a torch.cuda part; ``hip``: the runtime it needs (None: either)."""

    pattern: str
    vendor: str
    hip: bool | None = None


#: torch.cuda device-name rules, first match wins; NVIDIA/AMD are the fallbacks by runtime
CUDA_VENDOR_RULES: tuple[VendorRule, ...] = (
    VendorRule(r"hygon|\bDCU\b|^(DCU\s*)?[KZ]\d{3}|\bBW\d{3,4}\b", "hygon", hip=True),
    VendorRule(r"metax|\bMXC\d{3}", "metax"),
    VendorRule(r"iluvatar|\b(BI|MR)-V\d{2,3}", "iluvatar"),
    VendorRule(r"kunlun|\bP800\b|\bR[23]00\b", "kunlunxin"),
)


def identify_cuda_vendor(device_name: str, hip: bool) -> tuple[str, str]:
    """(vendor, how it was decided) for a torch.cuda device name; ``hip`` for ROCm/HIP builds."""
    for rule in CUDA_VENDOR_RULES:
        if rule.hip is not None and rule.hip != hip:
            continue
        if re.search(rule.pattern, device_name, re.IGNORECASE):
            return rule.vendor, f"device name {device_name!r} matches {rule.pattern!r}"
    if hip:
        return "amd", "HIP build of torch, no other vendor's name pattern matches"
    return "nvidia", "CUDA build of torch, no other vendor's name pattern matches"


@dataclass(frozen=True)
class DieLayout:
    """What one torch device of a model is, and how many such devices make one card."""

    pattern: str
    unit: str  # "chip" | "die" | "card"
    dies_per_card: int
    source: str


#: parts whose card shows up as several devices; every other model is one device per card
DIE_LAYOUTS: tuple[DieLayout, ...] = (
    DieLayout(r"\bMI250X?\b", "die", 2,
              "AMD Instinct MI250/MI250X: two GCDs per OAM module, each its own ROCm device (AMD CDNA2 docs)"),
    DieLayout(r"Ascend\s*910(?:_?93|C\b)", "die", 2,
              "Ascend 910_93 (Atlas A3, sold as 910C): two chips per NPU, npu-smi lists Chip 0 and 1 under "
              "one NPU ID and torch_npu counts each (Huawei npu-smi / Atlas A3 docs); the peak table's "
              "ascend-910c entry states dies_per_card 2 to match"),
)
#: what a model without an entry is taken to be
DEFAULT_LAYOUT = DieLayout("", "card", 1, "assumed: one device per card (no per-model entry)")


def die_layout(model: str) -> DieLayout:
    """The layout entry whose pattern matches the model name, else :data:`DEFAULT_LAYOUT`."""
    for layout in DIE_LAYOUTS:
        if re.search(layout.pattern, model, re.IGNORECASE):
            return layout
    return DEFAULT_LAYOUT


#: each family's vendor key (the keys of DeviceInfo.vendor) -> the backend that drives it
FAMILY_BACKENDS: dict[str, str] = {
    "huawei": "npu",
    "cambricon": "mlu",
    "moorethreads": "musa",
    "hygon": "cuda",
    "metax": "cuda",
    "iluvatar": "cuda",
    "kunlunxin": "cuda",
    "amd": "cuda",
    "nvidia": "cuda",
    "intel": "xpu",
}
