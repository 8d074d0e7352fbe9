"""Node power from a BMC through IPMI DCMI: ``ipmitool dcmi power reading``, polled.

DCMI's *Get Power Reading* (mode 01h, "system power statistics") returns four 16-bit values in W:
the current ("Instantaneous") power, and the minimum, maximum and average over the BMC's
*statistics reporting period*, with that period (a 32-bit count of ms) and a state bit saying
whether power measurement is active. ipmitool prints them as (lib/ipmi_dcmi.c,
``ipmi_dcmi_pwr_rd``)::

        Instantaneous power reading:                   215 Watts
        Minimum during sampling period:                162 Watts
        Maximum during sampling period:                276 Watts
        Average power reading over sample period:      176 Watts
        IPMI timestamp:                           Wed Feb 15 12:49:51 2017
        Sampling period:                          01131466 Seconds.
        Power reading state is:                   activated

ipmitool divides the period by 1000 (``%08u Seconds.``: truncated to whole seconds, so 0 means
under 1 s). From 1.8.19 the timestamp is printed without its newline, so "IPMI timestamp" and
"Sampling period" share one line; re-implementations print ``1000 Milliseconds``. The parser
accepts all of these (see ``tests/bench/power/data/dcmi/README.md`` for the samples).

Which value is ``power_w``: the **instantaneous** one. The average is over a period the BMC
chooses, not the measurement window: on real BMCs it ranges from 1 s to the time since the BMC
last reset its statistics -- 13 days (``01131466 Seconds.``) in one published sample -- so it says
nothing about a 60 s core phase, and its end is the moment of the poll, not of the window. The
instantaneous value (itself the BMC's short sensor average, typically 1 s) is polled and
integrated by the Sampler like every other polled source. The average, minimum, maximum and the
statistics period of the latest reading are recorded in :meth:`DcmiReader.describe`.

A reading whose state is "deactivated" is refused: the BMC says it is not measuring (OpenBMC
firmware is known to return a constant there). So are 0 W and 65535 W, which firmware returns
when it has no reading (a running node never draws 0 W).

The password never appears on the command line (visible to every user in ``ps``): ipmitool gets
``-E`` and reads ``IPMI_PASSWORD`` from its environment.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .base import PowerError
from .smi import DEFAULT_TIMEOUT_S, SmiReader

#: ipmitool interfaces this reader drives (out-of-band: IPMI 2.0 RMCP+ and IPMI 1.5 LAN)
INTERFACES = ("lanplus", "lan")
#: values BMC firmware returns when it has no reading (uint16 0 and 0xFFFF)
NO_READING_W = (0, 0xFFFF)
#: a BMC answer costs a network round trip or several: more than an in-band SMI call
DCMI_TIMEOUT_S = max(DEFAULT_TIMEOUT_S, 5.0)
#: units a statistics period may be printed in -> seconds per unit
_PERIOD_UNITS_S = {"seconds": 1.0, "second": 1.0, "s": 1.0, "milliseconds": 1e-3, "millisecond": 1e-3, "ms": 1e-3}
#: ``ipmitool dcmi power reading <5_sec|...|1_hour>`` (enhanced statistics) prints the period's name
_NAMED_PERIOD_S = {"sec": 1.0, "min": 60.0, "hour": 3600.0}

_POWER_LINES = {
    "instantaneous_w": r"Instantaneous power reading",
    "minimum_w": r"Minimum during sampling period",
    "maximum_w": r"Maximum during sampling period",
    "average_w": r"Average power reading over sample period",
}
_WATTS = r"\s*:\s*(?P<value>\S+)\s+Watts\b"
_TIMESTAMP_RE = re.compile(r"IPMI timestamp\s*:[ \t]*(?P<value>.*?)[ \t]*(?=Sampling period|$)", re.IGNORECASE | re.MULTILINE)
_PERIOD_RE = re.compile(
    # not "Minimum during sampling period", which also ends in "sampling period"
    r"(?<![A-Za-z] )Sampling period\s*:[ \t]*(?:(?P<count>\d+)[ \t]*(?P<unit>[A-Za-z]+)\.?|(?P<named>\d+)_(?P<named_unit>sec|min|hour)\b|(?P<other>\S*))",
    re.IGNORECASE,
)
_STATE_RE = re.compile(r"Power reading state is\s*:[ \t]*(?P<value>\S*)", re.IGNORECASE)


class DcmiOutputError(ValueError):
    """``ipmitool dcmi power reading`` printed no usable reading (the reader turns it into a PowerError)."""


@dataclass(frozen=True)
class DcmiReading:
    """One parsed ``ipmitool dcmi power reading``. Powers in W (DCMI reports whole watts)."""

    instantaneous_w: int
    minimum_w: int
    maximum_w: int
    average_w: int
    #: the BMC's statistics reporting period (what min/max/average cover); None when not printed as a number
    statistics_period_s: float | None
    #: how finely the period is printed: 1 s for ipmitool's "Seconds." (truncated), 1 ms for "Milliseconds"
    statistics_period_resolution_s: float | None
    #: the BMC's clock as printed (locale-dependent; the BMC clock is not synchronised: provenance only)
    ipmi_timestamp: str | None = None


def _one(pattern: re.Pattern[str], text: str, label: str) -> re.Match[str]:
    found = list(pattern.finditer(text))
    if not found:
        raise DcmiOutputError(f"no '{label}' line")
    if len(found) > 1:
        raise DcmiOutputError(f"'{label}' printed {len(found)} times (expected one reading)")
    return found[0]


def _watts(text: str, label: str) -> int:
    m = _one(re.compile(re.escape(label) + _WATTS, re.IGNORECASE), text, label)
    raw = m.group("value")
    if not raw.isdigit():
        raise DcmiOutputError(f"'{label}' is {raw!r}; expected a whole number of watts")
    value = int(raw)
    if value > 0xFFFF:
        raise DcmiOutputError(f"'{label}' is {value} W; DCMI reports 0..65535 W")
    return value


def _period(text: str) -> tuple[float | None, float | None]:
    m = _one(_PERIOD_RE, text, "Sampling period")
    if m.group("count") is not None:
        unit = m.group("unit").lower()
        if unit not in _PERIOD_UNITS_S:
            raise DcmiOutputError(f"'Sampling period' unit {m.group('unit')!r}; expected Seconds or Milliseconds")
        scale = _PERIOD_UNITS_S[unit]
        return int(m.group("count")) * scale, scale
    if m.group("named") is not None:
        return int(m.group("named")) * _NAMED_PERIOD_S[m.group("named_unit").lower()], None
    # ipmitool prints "(null)" for an enhanced-statistics period it cannot name: period unknown
    return None, None


def parse_dcmi_power_reading(text: str) -> DcmiReading:
    """The reading in the output of ``ipmitool dcmi power reading``.

    Accepts ipmitool's layouts (1.8.18 and earlier: one field a line; 1.8.19 and later: timestamp
    and sampling period on one line), any alignment, and a period in Seconds or Milliseconds.
    Raises :class:`DcmiOutputError` (a ValueError) for empty or truncated output, a value that
    is not a whole number of watts, a reading printed twice, a "deactivated" state, or a
    no-reading sentinel (0 or 65535 W)."""
    if not text or not text.strip():
        raise DcmiOutputError("empty output")
    powers = {key: _watts(text, label) for key, label in _POWER_LINES.items()}
    state = _one(_STATE_RE, text, "Power reading state is").group("value").lower()
    if state == "deactivated":
        raise DcmiOutputError("power reading state is 'deactivated': the BMC is not measuring power")
    if state != "activated":
        raise DcmiOutputError(f"power reading state {state!r}; expected 'activated'")
    for key in ("instantaneous_w", "average_w"):
        if powers[key] in NO_READING_W:
            raise DcmiOutputError(f"{_POWER_LINES[key]} is {powers[key]} W: firmware's value for 'no reading'")
    period_s, period_res_s = _period(text)
    ts = _TIMESTAMP_RE.search(text)
    return DcmiReading(
        **powers,
        statistics_period_s=period_s,
        statistics_period_resolution_s=period_res_s,
        ipmi_timestamp=(ts.group("value") or None) if ts else None,
    )


@dataclass(frozen=True)
class DcmiTarget:
    """A BMC to read. Secrets are resolved by the caller; ``password`` is never shown (repr=False)."""

    host: str
    port: int = 623
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    interface: str = "lanplus"
    timeout_s: float = DCMI_TIMEOUT_S
    accuracy_rel: float | None = None
    ipmitool: str = "ipmitool"

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip() or self.host.startswith("-") or any(c.isspace() for c in self.host):
            raise ValueError(f"dcmi host {self.host!r}: expected a host name or address")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ValueError(f"dcmi port {self.port!r}: expected an integer 1..65535")
        if self.interface not in INTERFACES:
            raise ValueError(f"dcmi interface {self.interface!r}: expected one of {', '.join(INTERFACES)}")
        if self.username is not None and (not isinstance(self.username, str) or not self.username):
            raise ValueError(f"dcmi username {self.username!r}: expected a non-empty user name or none")
        if not (isinstance(self.timeout_s, (int, float)) and math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"dcmi timeout_s {self.timeout_s!r}: expected a finite number of seconds above 0")
        if self.accuracy_rel is not None and not (math.isfinite(self.accuracy_rel) and 0 < self.accuracy_rel < 1):
            raise ValueError(f"dcmi accuracy_rel {self.accuracy_rel!r}: expected a fraction above 0 and below 1")
        if not self.ipmitool:
            raise ValueError("dcmi ipmitool: expected the ipmitool executable's name or path")

    def argv(self) -> list[str]:
        """The ipmitool command line (no secret in it: ``-E`` reads IPMI_PASSWORD)."""
        argv = [self.ipmitool, "-I", self.interface, "-H", self.host, "-p", str(self.port)]
        if self.username is not None:
            argv += ["-U", self.username]
        if self.password is not None:
            argv.append("-E")
        return argv + ["dcmi", "power", "reading"]


class DcmiReader(SmiReader):
    """A node's power through its BMC's DCMI power reading, one ``ipmitool`` run per sample.

    ``power_w`` is the instantaneous reading (see the module docstring for why not the average).
    No energy counter: the Sampler integrates the polled power."""

    name = "dcmi"

    def __init__(self, target: DcmiTarget, scope: str = "node") -> None:
        if scope not in ("node", "rack"):
            raise ValueError(f"dcmi scope {scope!r}: expected 'node' (a BMC) or 'rack'")
        self.target = target
        self.last_reading: DcmiReading | None = None
        super().__init__(
            0,
            target.argv(),
            self._parse,
            tool="ipmitool",
            version_command=[target.ipmitool, "-V"],
            timeout_s=target.timeout_s,
            scope=scope,
            name="dcmi",
        )
        self.counter_note = "DCMI reports power only (no energy counter): the polled instantaneous power is integrated"

    def _parse(self, text: str) -> float:
        reading = parse_dcmi_power_reading(text)
        self.last_reading = reading
        return float(reading.instantaneous_w)

    def _resolve(self) -> None:
        # run the executable found on PATH at open(), and hand the password over in the child's
        # environment only (ipmitool -E), never in argv
        self.command[0] = self.tool_path or self.command[0]
        if self.target.password is not None:
            self.env = {**os.environ, "IPMI_PASSWORD": self.target.password}

    def open(self) -> None:
        try:
            super().open()
        except PowerError as exc:
            raise PowerError(self._redact(f"dcmi {self.target.host}:{self.target.port}: {exc}")) from None

    def sample(self):  # type: ignore[override] - same signature, errors redacted
        try:
            return super().sample()
        except PowerError as exc:
            raise PowerError(self._redact(str(exc))) from None

    def _redact(self, text: str) -> str:
        pw = self.target.password
        return text.replace(pw, "***") if pw else text

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.pop("index", None)
        r = self.last_reading
        d.update(
            {
                "name": "dcmi",
                "scope": self.scope,
                "method": "polled",
                "host": self.target.host,
                "port": self.target.port,
                "interface": self.target.interface,
                "reads": "ipmitool dcmi power reading: Instantaneous power reading",
                "power_field": "instantaneous",
                "power_field_note": (
                    "the instantaneous reading is polled and integrated; the average covers the BMC's "
                    "statistics period, which is not the measurement window"
                ),
                "resolution_w": 1,
                "accuracy_rel": self.target.accuracy_rel,
                "password": "IPMI_PASSWORD (-E)" if self.target.password is not None else None,
                "statistics_period_s": r.statistics_period_s if r else None,
                "statistics_period_resolution_s": r.statistics_period_resolution_s if r else None,
                "last_reading": (
                    {
                        "instantaneous_w": r.instantaneous_w,
                        "minimum_w": r.minimum_w,
                        "maximum_w": r.maximum_w,
                        "average_w": r.average_w,
                        "ipmi_timestamp": r.ipmi_timestamp,
                    }
                    if r
                    else None
                ),
            }
        )
        return d
