"""Device power from a vendor's command-line SMI tool, polled (``npu-smi``, ``cnmon``).

Such tools report power only -- no energy counter -- so these readers have
``has_energy_counter == False`` and the sampler integrates the polled power over each window.
Each poll runs the tool once (``subprocess.run``, no shell, a timeout per call). A CLI call costs
tens to hundreds of milliseconds, so the achievable poll rate is low; every call's latency is
measured and reported by :meth:`SmiReader.describe`. When the tool is slower than the sampler's
period the samples simply arrive later than asked (the sampler does not try to catch up). Each
sample is stamped at the midpoint of its call: the tool reads its sensor at an unknown moment
inside the call, so a sample's time is uncertain by up to half the call's latency.

Output formats (see the parsers' docstrings for what is confirmed from sources and what is not):
Ascend ``npu-smi info -t power -i <card> -c <chip>`` prints lines ``\\t%-30s : %.1f`` labelled
``NPU Real-time Power(W)`` or ``Power Dissipation(W)`` (DCMI power in 0.1 W, printed in W);
Cambricon ``cnmon info -c <card> -p`` prints a ``Power`` section with a ``Usage : <n> W`` line.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .base import PowerError, PowerReader, PowerSample

DEFAULT_TIMEOUT_S = 2.0
#: the words of every "output holds no power figure" error (callers test for it)
NO_READING = "no power reading"
#: how much of an unparsed output an error message quotes
_QUOTE_CHARS = 400


def _cmdline(argv: Sequence[str]) -> str:
    return " ".join(argv)


def _quote(text: str) -> str:
    t = text.strip()
    return repr(t if len(t) <= _QUOTE_CHARS else t[:_QUOTE_CHARS] + "...")


def run_tool(argv: Sequence[str], timeout_s: float, tool: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """Run ``argv`` (no shell) and return its stdout; PowerError naming the command otherwise.
    ``env`` (default: this process's) carries secrets a tool reads from its environment."""
    tool = tool or os.path.basename(argv[0])
    try:
        cp = subprocess.run(list(argv), capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout_s, check=False, env=env)
    except FileNotFoundError:
        raise PowerError(f"{tool} not found on PATH") from None
    except subprocess.TimeoutExpired:
        raise PowerError(f"`{_cmdline(argv)}` timed out after {timeout_s:g} s") from None
    except OSError as e:
        raise PowerError(f"`{_cmdline(argv)}` could not run: {e}") from None
    # vendor tools may print in the locale's encoding (ait decodes npu-smi as gb2312): never fail on it
    out = cp.stdout.decode("utf-8", errors="replace")
    if cp.returncode != 0:
        err = cp.stderr.decode("utf-8", errors="replace").strip() or out.strip()
        raise PowerError(f"`{_cmdline(argv)}` exited with status {cp.returncode}: {_quote(err)}")
    return out


@dataclass
class LatencyStats:
    """Wall time of each tool call, for describe()."""

    latencies_s: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, seconds: float) -> None:
        with self._lock:
            self.latencies_s.append(seconds)
            if len(self.latencies_s) > 10_000:  # bound memory on long runs; keep the recent ones
                del self.latencies_s[:5_000]

    def summary(self) -> dict[str, Any]:
        with self._lock:
            xs = list(self.latencies_s)
        if not xs:
            return {"n": 0}
        return {
            "n": len(xs),
            "mean": statistics.fmean(xs),
            "median": statistics.median(xs),
            "min": min(xs),
            "max": max(xs),
            "last": xs[-1],
        }


class SmiReader(PowerReader):
    """Polls a vendor CLI for power in W. ``parse(stdout) -> watts`` raises ValueError (or any
    exception) when the text holds no power reading; that becomes a PowerError naming the command
    and quoting the text. ``version_command`` is run once at open() for provenance."""

    name = "smi"
    counter_update_s: float | None = None

    def __init__(
        self,
        index: int,
        command: list[str],
        parse: Callable[[str], float],
        *,
        tool: str | None = None,
        version_command: list[str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        scope: str = "device",
        name: str | None = None,
    ) -> None:
        if not command:
            raise ValueError("SmiReader needs a command")
        self.index = int(index)
        self.command = list(command)
        self.parse = parse
        self.tool = tool or os.path.basename(command[0])
        self.version_command = list(version_command) if version_command else None
        self.timeout_s = float(timeout_s)
        self.scope = scope  # type: ignore[assignment]
        if name:
            self.name = name
        self.tool_version: str | None = None
        self.tool_path: str | None = None
        self.latency = LatencyStats()
        self.counter_note = f"{self.tool} reports power only (no energy counter): the polled power is integrated"
        self.notes: list[str] = []
        #: the environment of each power poll (None: this process's)
        self.env: Mapping[str, str] | None = None
        #: where the output format was confirmed ("sample: ..."), or "ASSUMED: ..."
        self.format_source: str | None = None
        #: the smallest step of the printed power, in W (None: unknown)
        self.resolution_w: float | None = None
        self._open = False

    @property
    def power_source(self) -> str:
        return f"{self.name}:{_cmdline(self.command)}"

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        """Find the tool, record its version, resolve the device, and poll once: a reader that
        cannot read power now fails here (so reader_for falls back with the reason)."""
        if self._open:
            return
        self.tool_path = shutil.which(self.command[0])
        if self.tool_path is None:
            raise PowerError(f"{self.tool} not found on PATH")
        if self.version_command:
            try:
                self.tool_version = self._first_line(run_tool(self.version_command, self.timeout_s, self.tool))
            except PowerError as e:
                self.tool_version = None
                self.notes.append(f"version query failed: {e}")
        self._resolve()
        self._first_sample()

    def _first_sample(self) -> None:
        """Open, and prove it with one poll: a reader that cannot read power must not open."""
        self._open = True
        try:
            self.sample()
        except BaseException:
            self._open = False
            raise

    def close(self) -> None:
        self._open = False

    def _resolve(self) -> None:  # noqa: B027 - optional hook
        """Subclasses map the framework's device index to the tool's ids here (may edit command)."""

    @staticmethod
    def _first_line(text: str) -> str | None:
        for line in text.splitlines():
            if line.strip():
                return line.strip()
        return None

    # -- readings ---------------------------------------------------------------------------
    @property
    def has_energy_counter(self) -> bool:
        return False

    def energy_j(self) -> float | None:
        return None

    def read_power_w(self, argv: Sequence[str] | None = None) -> tuple[float, float]:
        """(power in W, time of the reading) from one call of the tool."""
        argv = list(argv or self.command)
        t0 = time.monotonic()
        text = run_tool(argv, self.timeout_s, self.tool, self.env)
        t1 = time.monotonic()
        self.latency.add(t1 - t0)
        try:
            power_w = float(self.parse(text))
        except Exception as e:  # noqa: BLE001 - any parser failure is "unparseable output"
            raise PowerError(f"`{_cmdline(argv)}`: {NO_READING} in its output ({e}): {_quote(text)}") from None
        return power_w, 0.5 * (t0 + t1)

    def sample(self) -> PowerSample:
        if not self._open:
            raise PowerError(f"{type(self).__name__} used before open()")
        power_w, t_s = self.read_power_w()
        return PowerSample(t_s=t_s, power_w=power_w)

    def describe(self) -> dict[str, Any]:
        lat = self.latency.summary()
        d: dict[str, Any] = {
            "name": self.name,
            "scope": self.scope,
            "index": self.index,
            "tool": self.tool,
            "tool_path": self.tool_path,
            "tool_version": self.tool_version,
            "command": list(self.command),
            "power_source": self.power_source,
            "energy_counter": False,
            "energy_counter_note": self.counter_note,
            "method": "polled CLI, integrated by the sampler (no energy counter)",
            "resolution_w": self.resolution_w,
            "format_source": self.format_source,
            "timeout_s": self.timeout_s,
            "poll_latency_s": lat,
            # a poll cannot come faster than the tool answers
            "max_poll_hz": (1.0 / lat["median"]) if lat.get("median") else None,
        }
        if not self._open:
            d["open"] = False
        if self.notes:
            d["notes"] = list(self.notes)
        return d


def visible_index(index: int, env_names: tuple[str, ...], tool: str, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """(the tool's device index, how it was found) for framework device ``index``: entry ``index``
    of the first visibility variable that is set, else ``index`` itself."""
    env = os.environ if env is None else env
    for name in env_names:
        value = env.get(name)
        if value is None or not value.strip():
            continue
        entries = [x.strip() for x in value.split(",") if x.strip()]
        if index >= len(entries) or not entries[index].isdigit():
            raise PowerError(f"{tool}: cannot map device {index} through {name}={value!r} (expected a list of indices)")
        return int(entries[index]), f"{name} entry {index}"
    return index, "index (no visibility variable set)"



# -- Huawei Ascend: npu-smi ---------------------------------------------------------------------

#: ``NPU Real-time Power(W) : 72.3`` (910/910B/910_93/950 NPU chips, 310P MCU),
#: ``Power Dissipation(W) : 8.0`` (MCU/CPU chips, older drivers); unit may be mW in principle
_NPU_POWER_RE = re.compile(
    r"^\s*(?P<label>(?:NPU\s+)?(?:Real-?time\s+)?Power(?:\s+Dissipation)?)\s*(?:\(\s*(?P<unit>m?W)\s*\))?\s*:\s*"
    r"(?P<value>[-+]?\d+(?:\.\d+)?)\s*(?P<unit2>m?W)?\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_NPU_RATED_RE = re.compile(r"^\s*Rated\s+Power\s+Dissipation", re.IGNORECASE | re.MULTILINE)


def parse_npu_smi_power(text: str) -> float:
    """Power in W from ``npu-smi info -t power -i <card> -c <chip>``.

    Confirmed from the npu-smi sources (hicann/driver,
    src/custom/dev_prod/user/npucli/src/npu_chip_info.c, show_ascend_chip_power_info): the value is
    DCMI's power (0.1 W units) printed as ``\\t%-30s : %.1f`` with label ``NPU Real-time Power(W)``
    (NPU chips), ``Power Dissipation(W)`` (MCU/other chips) or ``Rated Power Dissipation(W)``
    (Ascend 310 -- a rated constant, not a measurement, so refused here). Tolerated beyond that
    (assumption, not seen in sources): a ``(mW)`` unit or a trailing unit after the number."""
    if _NPU_RATED_RE.search(text) and not _NPU_POWER_RE.search(text):
        raise ValueError("only a rated power dissipation (a constant, e.g. Ascend 310), not a measured power")
    m = _NPU_POWER_RE.search(text)
    if m is None:
        raise ValueError("no 'NPU Real-time Power(W)' or 'Power Dissipation(W)' line")
    unit = (m.group("unit") or m.group("unit2") or "W").lower()
    value = float(m.group("value"))
    if value < 0:
        raise ValueError(f"negative power {value}")
    return value / 1000.0 if unit == "mw" else value


@dataclass(frozen=True)
class NpuChip:
    """One row of ``npu-smi info -m``."""

    card: int  # "NPU ID": the -i argument
    chip: int  # "Chip ID": the -c argument
    logic_id: int | None  # "Chip Logic ID" (None for MCU rows and on 950, whose table has none)
    name: str

    @property
    def is_npu(self) -> bool:
        return self.name.strip().lower() not in ("mcu", "3559", "cpu")


def parse_npu_smi_mapping(text: str) -> list[NpuChip]:
    """Rows of ``npu-smi info -m``. Confirmed from npu_info_print.c (print_mapping_info*): a header
    ``NPU ID  Chip ID  Chip Logic ID  Chip Name`` (910_93 adds ``Chip Phy-ID``; 950 prints
    ``NPU ID  Slot ID  Chip ID  Chip Phy-ID  Chip Name``), columns ``%-30`` wide, ``-`` for the
    logic id of MCU rows; chip names may contain one space (``Ascend 310P3``), so columns are
    split on runs of two or more blanks."""
    rows: list[NpuChip] = []
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        cols = re.split(r"\s{2,}|\t", line.strip())
        if header is None:
            if "NPU ID" in cols and "Chip ID" in cols:
                header = cols
            continue
        if len(cols) < len(header):
            continue
        rec = dict(zip(header, cols[: len(header) - 1] + [" ".join(cols[len(header) - 1 :])]))
        try:
            card, chip = int(rec["NPU ID"]), int(rec["Chip ID"])
        except (KeyError, ValueError):
            continue
        logic = rec.get("Chip Logic ID", "-")
        rows.append(NpuChip(card, chip, int(logic) if logic.strip().isdigit() else None, rec.get("Chip Name", "")))
    if header is None:
        raise ValueError("no 'NPU ID ... Chip ID' header")
    return rows


class NpuSmiReader(SmiReader):
    """One Ascend chip through ``npu-smi info -t power -i <card> -c <chip>``.

    Device mapping (an assumption, documented because torch_npu and npu-smi number devices
    differently): torch_npu's index ``i`` is a logical device id, after
    ``ASCEND_RT_VISIBLE_DEVICES`` renumbering (entry ``i`` of that list when it is set). The
    logical id is looked up in the ``Chip Logic ID`` column of ``npu-smi info -m`` to get the card
    (``NPU ID``) and chip; on tables without that column (Ascend 950) the ``i``-th NPU row is
    used; when ``info -m`` cannot be read, card ``i`` chip 0 is assumed -- ``matched_by`` in
    describe() says which. Where a chip reports no power of its own (310P cards), the card's MCU
    chip is read instead, but only on single-chip cards: on a multi-chip card that figure is
    shared and per-device energy would count it several times, so the reader refuses."""

    name = "npu-smi"

    def __init__(
        self,
        index: int,
        *,
        card: int | None = None,
        chip: int | None = None,
        tool: str = "npu-smi",
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.card = card
        self.chip = chip
        self.matched_by: str | None = "explicit card/chip" if card is not None else None
        self.mapping: list[NpuChip] | None = None
        super().__init__(
            index,
            self._power_command(tool, card or 0, chip or 0),
            parse_npu_smi_power,
            tool="npu-smi",
            version_command=[tool, "-v"],
            timeout_s=timeout_s,
        )
        self._exe = tool
        self.format_source = ("sources: hicann/driver npucli npu_chip_info.c (show_ascend_chip_power_info): "
                              "DCMI power in 0.1 W printed as %.1f")
        self.resolution_w = 0.1

    @staticmethod
    def _power_command(exe: str, card: int, chip: int) -> list[str]:
        return [exe, "info", "-t", "power", "-i", str(card), "-c", str(chip)]

    def logical_id(self) -> int:
        """torch_npu index -> logical device id through ASCEND_RT_VISIBLE_DEVICES."""
        return visible_index(self.index, ("ASCEND_RT_VISIBLE_DEVICES",), "npu-smi")[0]

    def _resolve(self) -> None:
        if self.card is None:
            logical = self.logical_id()
            try:
                self.mapping = parse_npu_smi_mapping(run_tool([self._exe, "info", "-m"], max(self.timeout_s, 5.0), self.tool))
            except (PowerError, ValueError) as e:
                self.mapping = None
                self.card, self.chip = logical, 0
                self.matched_by = f"assumed card {logical} chip 0 (npu-smi info -m unusable: {e})"
            else:
                self.card, self.chip, self.matched_by = self._lookup(logical, self.mapping)
        if self.chip is None:
            self.chip = 0
        self.command = self._power_command(self._exe, self.card, self.chip)

    @staticmethod
    def _lookup(logical: int, rows: list[NpuChip]) -> tuple[int, int, str]:
        by_logic = [r for r in rows if r.logic_id == logical]
        if by_logic:
            r = by_logic[0]
            return r.card, r.chip, f"npu-smi info -m: Chip Logic ID {logical}"
        npus = [r for r in rows if r.is_npu]
        if all(r.logic_id is None for r in rows) and logical < len(npus):
            r = npus[logical]
            return r.card, r.chip, f"npu-smi info -m: NPU row {logical} (table has no Chip Logic ID)"
        raise PowerError(f"npu-smi: logical device {logical} not in `npu-smi info -m` ({len(npus)} NPU chips listed)")

    def open(self) -> None:
        try:
            super().open()
        except PowerError as first:
            if not self._try_mcu(first):
                raise

    def _try_mcu(self, first: PowerError) -> bool:
        """Fall back to the card's MCU chip when the NPU chip itself has no power reading."""
        if not self.mapping or self.card is None or "timed out" in str(first):
            return False  # a hung tool is not a chip without power: do not wait on it twice
        card_rows = [r for r in self.mapping if r.card == self.card]
        mcu = [r for r in card_rows if r.name.strip().lower() == "mcu"]
        n_npu = sum(1 for r in card_rows if r.is_npu)
        if not mcu or mcu[0].chip == self.chip:
            return False
        if n_npu > 1:
            raise PowerError(
                f"{first}; the card's MCU reports card power shared by its {n_npu} chips: "
                "a per-device figure would count it more than once"
            ) from None
        self.command = self._power_command(self._exe, self.card, mcu[0].chip)
        self.chip = mcu[0].chip
        self.matched_by = f"{self.matched_by}; board power via the card's MCU chip {mcu[0].chip} (the NPU chip reports none)"
        self.notes.append(f"NPU chip power unavailable ({first}); reading the MCU chip")
        self._first_sample()
        return True

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"card": self.card, "chip": self.chip, "matched_by": self.matched_by})
        return d


# -- Cambricon: cnmon ---------------------------------------------------------------------------

_NUM_UNIT = re.compile(r"^\s*(?P<value>[-+]?\d+(?:\.\d+)?)\s*(?P<unit>m?W)?\s*$", re.IGNORECASE)
_KV = re.compile(r"^\s*(?P<key>[^:]+?)\s*(?:\((?P<kunit>m?W)\))?\s*:\s*(?P<value>.*?)\s*$", re.IGNORECASE)


def parse_cnmon_power(text: str) -> float:
    """Power in W from ``cnmon info -c <card> -p``.

    NOT confirmed from a vendor sample (cnmon is closed source and no output sample was found):
    the shape assumed is a ``Power`` section header followed by ``Usage : <n> W`` (and ``Cap``),
    as parsed by SwanLab's Cambricon collector (swanlab/.../cambricon.py: the line after a
    ``power`` line containing ``usage``) and as named by cndev's ``cndevDevicePowerInfo_t``
    (``usage``/``cap``, unit W; Cambricon/mlu-exporter pkg/cndev/include/cndev.h). Tolerated:
    a one-line ``Power Usage : 75 W``, any indentation, a unit in the label (``Usage(W)``) or after
    the number, W or mW. A ``Usage`` line outside a power section (MLU/memory usage, in %) is
    never taken."""
    in_power = False
    for line in text.splitlines():
        if not line.strip():
            continue
        kv = _KV.match(line)
        if kv is None or not kv.group("value"):
            # a section header: "Power", "Power Info", "Temperature", "Card 0" ...
            header = line.strip().rstrip(":").strip().lower()
            in_power = header.startswith("power")
            continue
        key = kv.group("key").strip().lower()
        is_power_line = key in ("power usage", "power") or (in_power and key.startswith("usage"))
        if not is_power_line:
            continue
        m = _NUM_UNIT.match(kv.group("value"))
        if m is None:
            continue  # "N/A" and the like: keep looking
        unit = (kv.group("kunit") or m.group("unit") or "W").lower()
        value = float(m.group("value"))
        if value < 0:
            raise ValueError(f"negative power {value}")
        return value / 1000.0 if unit == "mw" else value
    raise ValueError("no 'Usage : <n> W' line in a 'Power' section")


#: where each cnmon format the reader knows comes from
CNMON_INFO_SOURCE = ("ASSUMED: `cnmon info -c N -p` 'Power' section with 'Usage : <n> W' -- no published sample "
                     "found; shape as parsed by SwanLab's Cambricon collector and named by cndev.h")
CNMON_TABLE_SOURCE = ("sample: default `cnmon` table, MLU370-X4 (PaddlePaddle MLU install guide, via accel's "
                      "testdata/cnmon.txt): 'Pwr:Usage/Cap' as '30 W/ 150 W'")


class CnmonReader(SmiReader):
    """One Cambricon MLU card through ``cnmon info -c <card> -p``.

    Device mapping (assumption): torch_mlu's index ``i`` maps to cnmon card
    ``MLU_VISIBLE_DEVICES[i]`` when that variable is set, else card ``i`` (cnmon numbers cards as
    the driver enumerates them, as torch_mlu does without the variable)."""

    name = "cnmon"

    def __init__(self, index: int, *, card: int | None = None, tool: str = "cnmon", timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.card = card
        self.matched_by: str | None = "explicit card" if card is not None else None
        self._exe = tool
        super().__init__(
            index,
            self._power_command(tool, card or 0),
            parse_cnmon_power,
            tool="cnmon",
            version_command=[tool, "version"],
            timeout_s=timeout_s,
        )
        self.format_source = CNMON_INFO_SOURCE
        self.resolution_w = None  # unknown: the format itself is assumed

    @staticmethod
    def _power_command(exe: str, card: int) -> list[str]:
        return [exe, "info", "-c", str(card), "-p"]

    def _resolve(self) -> None:
        if self.card is None:
            self.card, self.matched_by = visible_index(self.index, ("MLU_VISIBLE_DEVICES",), "cnmon")
        self.command = self._power_command(self._exe, self.card)

    def open(self) -> None:
        try:
            super().open()
        except PowerError as first:
            if NO_READING not in str(first):
                raise  # the tool failed or hung: its summary table would not answer either
            self._use_summary_table(first)

    def _use_summary_table(self, first: PowerError) -> None:
        """Fall back to the plain ``cnmon`` table, whose layout is documented by a public sample
        (``Pwr:Usage/Cap`` as ``30 W/ 150 W``), when ``info -p`` holds no reading we recognise."""
        from .vendor_smi import parse_usage_cap_table

        card = self.card

        def from_table(text: str) -> float:
            rows = [r for r in parse_usage_cap_table(text) if r.index == card]
            if not rows or rows[0].power_w is None:
                raise ValueError(f"card {card} has no Pwr:Usage figure in the table")
            return rows[0].power_w

        self.command, self.parse = [self._exe], from_table
        self.format_source = CNMON_TABLE_SOURCE
        self.resolution_w = 1.0
        self.notes.append(f"`cnmon info -p` unreadable ({first}); reading the summary table")
        self._first_sample()

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"card": self.card, "matched_by": self.matched_by})
        return d


def make_npu_smi_reader(index: int, info: dict[str, Any]) -> NpuSmiReader:
    """The registry's factory for backend "npu"."""
    return NpuSmiReader(index)


def make_cnmon_reader(index: int, info: dict[str, Any]) -> CnmonReader:
    """The registry's factory for backend "mlu"."""
    return CnmonReader(index)
