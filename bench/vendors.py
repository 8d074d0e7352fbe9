"""Which accelerator vendors count as domestic (国产) for the specification's domestic-share indicators.

Data, not logic: a backend may also set ``DeviceInfo.extra["domestic"]`` itself (device plugins do).
"""

from __future__ import annotations

import re

#: vendor keys as backends report them → domestic?
DOMESTIC_VENDORS = frozenset({
    "huawei", "cambricon", "moorethreads", "hygon", "kunlunxin", "metax", "iluvatar", "enflame", "biren",
    "zhaoxin", "phytium", "loongson",
})

#: model-name patterns that identify a domestic part when the vendor string is generic (ROCm builds
#: report Hygon DCUs through torch.cuda with AMD-like vendor strings)
DOMESTIC_MODEL_PATTERNS = (
    re.compile(r"\b(DCU|K100|Z100|BW1000)\b", re.I),  # Hygon DCU
    re.compile(r"Ascend", re.I),
    re.compile(r"\bMLU\d", re.I),
    re.compile(r"\bMTT\b", re.I),
)


def is_domestic(vendor: str | None, model: str | None) -> bool:
    if vendor and vendor.lower() in DOMESTIC_VENDORS:
        return True
    return bool(model) and any(p.search(model) for p in DOMESTIC_MODEL_PATTERNS)
