"""Device power from the domestic vendors' SMI tools, polled: one table row per tool.

``mthreads-gmi`` (Moore Threads), ``hy-smi`` (Hygon DCU), ``xpu-smi`` (Kunlunxin), ``mx-smi``
(MetaX) and ``ixsmi`` (Iluvatar CoreX) each print every device of the node; a parser turns the
text into :class:`PowerRow` s and one selector picks this device's row -- by PCI address where
the tool prints one and the device's inventory has one, else by the tool's device index after
undoing the visibility variable's renumbering. None of these tools has an energy counter: the
readers are polled (:class:`~.smi.SmiReader`) and the sampler integrates the power.

What each parser was checked against is in :data:`TOOL_SPECS` (``format_source``) and in
``tests/bench/power/data/<vendor>/README.md``; a format nobody has published is marked ASSUMED.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any, Callable

from .amdsmi import parse_bdf
from .base import PowerError
from .smi import DEFAULT_TIMEOUT_S, SmiReader, visible_index


@dataclass(frozen=True)
class PowerRow:
    """One device's power as a tool printed it."""

    index: int | None  # the tool's device index
    bdf: str | None  # PCI address as printed
    power_w: float | None  # None: the tool printed N/A
    quantity: str  # what the figure is ("board power", "average graphics package power", ...)


_NUM_W = re.compile(r"^\s*(?P<v>[-+]?\d+(?:\.\d+)?)\s*(?P<u>m?W)?\s*$", re.IGNORECASE)
_NA = ("n/a", "na", "-", "not supported", "[n/a]", "[not supported]")


def watts(text: str, field: str) -> float | None:
    """``96.66W`` / ``80.0`` / ``37 W`` / ``500 mW`` in W; None for N/A; ValueError otherwise."""
    t = str(text).strip()
    if t.lower() in _NA:
        return None
    m = _NUM_W.match(t)
    if m is None:
        raise ValueError(f"{field}: {t!r} is not a power in W")
    value = float(m.group("v"))
    if value < 0:
        raise ValueError(f"{field}: negative power {value}")
    return value / 1000.0 if (m.group("u") or "").lower() == "mw" else value


# -- parsers ------------------------------------------------------------------------------------


def parse_mthreads_gmi_json(text: str) -> list[PowerRow]:
    """``mthreads-gmi -q --json``: ``GPU[i]["Power Readings"]["Power Draw "]`` (the key carries a
    trailing space in real output, so keys are compared stripped), ``Index``, ``PCI.Bus ID``."""
    doc = json.loads(text)
    gpus = doc.get("GPU") if isinstance(doc, dict) else None
    if not isinstance(gpus, list) or not gpus:
        raise ValueError("no 'GPU' list")
    rows = []
    for gpu in gpus:
        readings = {str(k).strip().lower(): v for k, v in (gpu.get("Power Readings") or {}).items()}
        if "power draw" not in readings:
            raise ValueError(f"GPU {gpu.get('Index')!r}: no 'Power Readings'/'Power Draw'")
        rows.append(PowerRow(
            index=int(gpu["Index"]),
            bdf=(gpu.get("PCI") or {}).get("Bus ID"),
            power_w=watts(readings["power draw"], "Power Draw"),
            quantity="board power draw (Power Readings / Power Draw)",
        ))
    return rows


_HY_CARD = re.compile(r"^card(\d+)$")
_HY_POWER_KEYS = ("Average Graphics Package Power (W)", "Current Socket Graphics Package Power (W)")


def parse_hy_smi_json(text: str) -> list[PowerRow]:
    """``hy-smi --showpower --json``: ``{"card0": {"Average Graphics Package Power (W)": "80.0"}}``
    (rocm-smi's JSON shape; the average is the firmware's, not an instant reading)."""
    doc = json.loads(text)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object of cards")
    rows = []
    for key, card in doc.items():
        m = _HY_CARD.match(str(key))
        if m is None or not isinstance(card, dict):
            continue  # "system" and other non-card entries
        found = next((k for k in _HY_POWER_KEYS if k in card), None)
        if found is None:
            raise ValueError(f"{key}: none of {', '.join(_HY_POWER_KEYS)}")
        rows.append(PowerRow(int(m.group(1)), None, watts(card[found], found), found.replace(" (W)", "").lower()))
    if not rows:
        raise ValueError("no 'cardN' entries")
    return rows


#: ``xpu-smi -m`` columns used (0-based, after shell-style splitting: the quoted model name is one)
XPU_SMI_M_FIELDS = {"bdf": 0, "index": 1, "power_w": 8, "model": 21}
_XPU_SMI_M_MIN_FIELDS = 22


def parse_xpu_smi_m(text: str) -> list[PowerRow]:
    """``xpu-smi -m``: one line per device, space separated: BDF, device id, ..., power in W as the
    9th field, ..., the quoted model name (``"P800 OAM"``)."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = shlex.split(line)
        if len(fields) < _XPU_SMI_M_MIN_FIELDS or parse_bdf(fields[0]) is None or not fields[1].isdigit():
            raise ValueError(f"unrecognised xpu-smi -m line ({len(fields)} fields): {line.strip()[:80]!r}")
        f = XPU_SMI_M_FIELDS
        rows.append(PowerRow(int(fields[f["index"]]), fields[f["bdf"]], watts(fields[f["power_w"]], "power field"),
                             f"power ({fields[f['model']]}, xpu-smi -m field {f['power_w'] + 1})"))
    if not rows:
        raise ValueError("no device lines")
    return rows


_TABLE_DEVICE = re.compile(r"^\|\s*(?P<index>\d+)\s+[^|%]*\|")
_TABLE_BDF = re.compile(r"\b(?:[0-9a-f]{4,8}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\b", re.IGNORECASE)
_TABLE_USAGE_CAP = re.compile(r"(?P<usage>\d+(?:\.\d+)?|N/A)\s*W?\s*/\s*(?P<cap>\d+(?:\.\d+)?|N/A)\s*W", re.IGNORECASE)


def parse_usage_cap_table(text: str) -> list[PowerRow]:
    """An nvidia-smi-like summary table (``mx-smi``, ``cnmon``): a row ``| <index> <name> ... |``
    (with the PCI address where the tool prints one) followed by a row holding
    ``Pwr:Usage/Cap`` as ``57W / 350W`` or ``30 W/ 150 W``."""
    rows: list[PowerRow] = []
    current: tuple[int, str | None] | None = None
    for line in text.splitlines():
        dev = _TABLE_DEVICE.match(line)
        if dev is not None:
            bdf = _TABLE_BDF.search(line)
            current = (int(dev.group("index")), bdf.group(0) if bdf else None)
            continue
        pwr = _TABLE_USAGE_CAP.search(line)
        if pwr is not None and current is not None:
            rows.append(PowerRow(current[0], current[1], watts(pwr.group("usage"), "Pwr:Usage"),
                                 "board power (Pwr:Usage/Cap)"))
            current = None
    if not rows:
        raise ValueError("no device row followed by a 'Pwr:Usage/Cap' (e.g. '57W / 350W') row")
    return rows


def parse_ixsmi_xml(text: str) -> list[PowerRow]:
    """``ixsmi -q -x`` (nvidia-smi's XML log): ``<gpu id=BDF>`` with ``minor_number`` and
    ``power_readings``; board power where reported, else the GPU (chip) power, named so."""
    # the tool's own local output: ElementTree does not fetch the DTD it names
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"not XML ({exc})") from None
    rows = []
    for gpu in root.iter("gpu"):
        readings = gpu.find("power_readings")
        if readings is None:
            raise ValueError(f"gpu {gpu.get('id')!r}: no <power_readings>")
        power_w, quantity = None, "board power"
        for tag, label in (("board_power_draw", "board power"), ("gpu_power_draw", "GPU (chip) power, no board figure"),
                           ("power_draw", "power draw")):
            node = readings.find(tag)
            if node is not None and node.text is not None and (value := watts(node.text, tag)) is not None:
                power_w, quantity = value, label
                break
        minor = gpu.findtext("minor_number")
        rows.append(PowerRow(int(minor) if minor and minor.strip().isdigit() else None, gpu.get("id"), power_w, quantity))
    if not rows:
        raise ValueError("no <gpu> elements")
    return rows


# -- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolSpec:
    """How one vendor tool is run and read."""

    name: str
    vendors: frozenset[str]  # DeviceInfo.vendor values the tool serves
    power_args: tuple[str, ...]
    version_args: tuple[str, ...] | None
    parse: Callable[[str], list[PowerRow]]
    #: variables that renumber the framework's devices, first set one wins
    visible_env: tuple[str, ...]
    #: the smallest step of the printed figure, in W
    resolution_w: float
    format_source: str


TOOL_SPECS: dict[str, ToolSpec] = {
    "mthreads-gmi": ToolSpec(
        "mthreads-gmi", frozenset({"moorethreads"}), ("-q", "--json"), ("-v",), parse_mthreads_gmi_json,
        ("MUSA_VISIBLE_DEVICES",), 0.01,
        "sample: real `mthreads-gmi --query --json` excerpt (8x MTT S5000, driver 3.3.5-server) quoted in "
        "a public Go test; key shape also parsed by SwanLab's Moore Threads collector (-q -d POWER --json)",
    ),
    "hy-smi": ToolSpec(
        "hy-smi", frozenset({"hygon"}), ("--showpower", "--json"), ("--showdriverversion",), parse_hy_smi_json,
        ("HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"), 0.1,
        "sample: rocm-smi JSON captured on a Hygon DCU (gpustack tests/detectors/rocm_smi/data/"
        "hygon-gpu-24.04.3-rocm-smi.json); the same keys from `hy-smi --showpower --json` per SwanLab's "
        "Hygon collector; hy-smi's own JSON not seen",
    ),
    "xpu-smi": ToolSpec(
        "xpu-smi", frozenset({"kunlunxin"}), ("-m",), None, parse_xpu_smi_m,
        ("XPU_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"), 1.0,
        "sample: two P800 OAM lines of `xpu-smi -m` (infer-forge-harness tests/unit/test_memory_budget.py, "
        "via accel's testdata); field 9 = power in W as read by SwanLab's Kunlunxin collector",
    ),
    "mx-smi": ToolSpec(
        "mx-smi", frozenset({"metax"}), (), ("--show-version",), parse_usage_cap_table,
        ("CUDA_VISIBLE_DEVICES",), 1.0,
        "samples: default `mx-smi` tables, MetaX C500 (ms-swift docs BestPractices/Metax-support.md) and "
        "N260 older layout (AIMA internal/hal/hal_test.go); renumbering by CUDA_VISIBLE_DEVICES ASSUMED",
    ),
    "ixsmi": ToolSpec(
        "ixsmi", frozenset({"iluvatar"}), ("-q", "-x"), None, parse_ixsmi_xml,
        ("CUDA_VISIBLE_DEVICES",), 1.0,
        "sample: `ixsmi -q -x` of 2x Iluvatar MR-V100, driver 4.2.0 (hawkli-1994/gpu_tools "
        "pkg/gpu/ix/testdata/ixsmi.xml)",
    ),
}


class VendorSmiReader(SmiReader):
    """One device through a tool of :data:`TOOL_SPECS`, polled; the row is picked by PCI address
    (``pci_bus_id`` of the device's inventory) where the tool prints one, else by index."""

    def __init__(self, spec: ToolSpec, index: int, *, pci_bus_id: str | None = None, exe: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.spec = spec
        self.pci_bus_id = pci_bus_id
        self.tool_index: int | None = None
        self.matched_by: str | None = None
        self.quantity: str | None = None
        exe = exe or spec.name
        super().__init__(index, [exe, *spec.power_args], self._power_of_this_device, tool=spec.name,
                         version_command=[exe, *spec.version_args] if spec.version_args else None,
                         timeout_s=timeout_s, name=spec.name)
        self.format_source = spec.format_source
        self.resolution_w = spec.resolution_w

    def _resolve(self) -> None:
        if parse_bdf(self.pci_bus_id or "") is None:
            self.pci_bus_id = None
            self.tool_index, self.matched_by = visible_index(self.index, self.spec.visible_env, self.spec.name)

    def _select(self, rows: list[PowerRow]) -> PowerRow:
        want = parse_bdf(self.pci_bus_id) if self.pci_bus_id else None
        if want is not None:
            by_bdf = [r for r in rows if r.bdf and parse_bdf(r.bdf) == want]
            if by_bdf:
                self.matched_by = f"PCI address {self.pci_bus_id}"
                return by_bdf[0]
            if all(r.bdf for r in rows):
                raise ValueError(f"no device at PCI address {self.pci_bus_id} (tool lists "
                                 f"{', '.join(str(r.bdf) for r in rows)})")
            # the tool prints no address for some device: fall back to the index
            self.tool_index, how = visible_index(self.index, self.spec.visible_env, self.spec.name)
            self.matched_by = f"{how} (the tool prints no PCI address)"
        by_index = [r for r in rows if r.index == self.tool_index]
        if not by_index:
            raise ValueError(f"no device {self.tool_index} (tool lists {[r.index for r in rows]})")
        return by_index[0]

    def _power_of_this_device(self, text: str) -> float:
        row = self._select(self.spec.parse(text))
        if row.power_w is None:
            raise ValueError(f"device {row.index} reports no power (N/A)")
        self.quantity = row.quantity
        return row.power_w

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"quantity": self.quantity, "tool_index": self.tool_index, "matched_by": self.matched_by})
        return d


def make_vendor_reader(name: str, index: int, info: dict[str, Any]) -> VendorSmiReader:
    """The registry's factory for tool ``name``; PowerError for a device of another vendor."""
    spec = TOOL_SPECS[name]
    vendor = str(info.get("vendor") or "").lower()
    if vendor and vendor not in spec.vendors:
        raise PowerError(f"{name}: not a {'/'.join(sorted(spec.vendors))} device (vendor {vendor!r})")
    return VendorSmiReader(spec, index, pci_bus_id=info.get("pci_bus_id") or None)
