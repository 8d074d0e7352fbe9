"""Rack (or node) power from a log of timestamped readings, loaded after the run.

For sites whose PDUs are not on the network: a calibrated power analyser logs readings (SPEC
PTDaemon, as MLPerf Power runs it), or someone writes down a PDU display's readings with their
times. :func:`load_meter_log` reads such a log into a :class:`MeterLog` of
:class:`MeterReading` -- each the interval it covers on the epoch clock and the power over it.
Which readings fall inside a measurement window is not decided here (the rack arithmetic drops
the ones that straddle its edges); :meth:`MeterLog.to_timeline` moves readings onto rank 0's
monotonic timeline. The logging clock is taken as synchronised with rank 0's (NTP on both, as
MLPerf Power requires of its director).

Formats (the column names and limits are the tables below):

* ``csv``: one header row, then one reading a row; blank lines and lines starting with ``#`` are
  skipped; columns are matched case-insensitively and unknown ones ignored (and recorded).

  - time, exactly one of: ``time`` -- ISO 8601 (``2024-05-05T13:06:44.250+08:00``; a space
    for the ``T`` and ``Z`` for UTC are accepted); ``epoch_s`` -- seconds since 1970-01-01 UTC
    (decimals allowed; 2000..2100 only, which catches milliseconds).
  - power, exactly one of ``power_w``, ``power_kw``: finite and >= 0.
  - optional ``energy_j`` / ``energy_kwh``: the meter's *cumulative* energy register at the
    timestamp (not the energy of the interval); it may not decrease.
  - optional ``interval_s``: the reading is the average over the ``interval_s`` seconds ending
    at its timestamp; absent or empty: an instantaneous reading (``t_begin == t_end``).

* ``ptdaemon``: the log PTDaemon writes with ``-l`` (MLPerf's ``spl.txt``): lines
  ``Time,MM-DD-YYYY HH:MM:SS.mmm,Watts,<W>,Volts,<V>,Amps,<A>,PF,<pf>,Mark,<mark>`` optionally
  followed by per-channel groups ``Ch1,Watts,...`` (multi-channel analysers: the first ``Watts``
  is the total, the one used). ``Time,<ts>,NOTICE|WARNING|ERROR,<text>`` lines are the
  daemon's messages: counted and recorded, not readings; other lines (message continuations) are
  skipped and counted. Each reading is PTDaemon's 1 s average ending at its timestamp.

Timezones: a timestamp without a UTC offset is ambiguous -- PTDaemon always writes the
director's local time without one. Such timestamps need ``tz`` (``"UTC"``, ``"+08:00"`` or an
IANA name such as ``"Asia/Shanghai"``); without it the log is refused, never guessed. With an
IANA zone, a local time that is skipped or repeated by a daylight-saving change is refused too.
An explicit offset in an ISO timestamp always wins over ``tz``.

Checks (each failure is one :class:`MeterLogError` naming the file, line, column and value):
timestamps strictly increasing and inside :data:`EPOCH_RANGE_S`; intervals not overlapping the
previous reading by more than :data:`OVERLAP_TOLERANCE_REL` of their length (PTDaemon's 1 s
samples jitter by ~10 ms); every quantity finite, non-negative and physically plausible
(:data:`QUANTITY_MAX`: a meter of a rack reads at most the rack bound of
``bench.audit_figures.POWER_BOUNDS_W``); energy not decreasing; UTF-8 text (a BOM is allowed);
a regular file (no FIFO or device) of at most :data:`MAX_LOG_BYTES`, checked before reading,
and at most :data:`MAX_READINGS` readings (so memory stays bounded).

``resolution_w`` is inferred from the printed numbers: the finest decimal place any reading
uses, trailing zeros ignored (PTDaemon prints ``23.430000``: 0.01 W), times the unit. It is what
the log shows, an upper bound on the meter's real resolution.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import math
import os
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable

from ..audit_figures import POWER_BOUNDS_W
from ..bounded_read import UnreadableFile, read_regular_file
from ..meter_energy import Reading
from .base import PowerError

#: the largest log read (a 1 Hz PTDaemon log of a week is ~60 MiB: split longer logs per run)
MAX_LOG_BYTES = 128 * 1024 * 1024
#: the most readings one log may hold (11 days at 1 Hz): bounds the memory its rows take
MAX_READINGS = 1_000_000
#: the largest plausible value of each quantity: (bound in SI units, unit, why); power per scope, the audit's bounds
QUANTITY_MAX: dict[str, tuple[Decimal, str, str]] = {
    "interval_s": (Decimal(3600), "s", "a reading averaged over more than an hour is no reading of a run"),
    "energy_j": (Decimal(10) ** 16, "J", "a 300 kW rack's register after 1,000 years"),
    **{f"power_w/{scope}": (Decimal(int(w)), "W", f"the most a {scope} meter can plausibly read")
       for scope, w in POWER_BOUNDS_W.items()},
}
#: how much of the previous reading's interval a reading may overlap (clock jitter), relative
OVERLAP_TOLERANCE_REL = 0.05
#: PTDaemon's sample: the analyser's average over the second ending at the timestamp
PTDAEMON_INTERVAL_S = 1.0
PTDAEMON_TIME_FORMAT = "%m-%d-%Y %H:%M:%S.%f"
#: plausible epoch seconds: 2000-01-01 .. 2100-01-01 UTC (milliseconds fall outside)
EPOCH_RANGE_S = (946_684_800.0, 4_102_444_800.0)
#: CSV columns: name -> (kind, scale to SI)
TIME_COLUMNS = {"time": "iso8601", "epoch_s": "epoch"}
POWER_COLUMNS = {"power_w": Decimal(1), "power_kw": Decimal(1000)}
ENERGY_COLUMNS = {"energy_j": Decimal(1), "energy_kwh": Decimal(3_600_000)}
INTERVAL_COLUMN = "interval_s"
#: the literals of a PTDaemon reading line, by field index
PTDAEMON_LITERALS = {0: "Time", 2: "Watts", 4: "Volts", 6: "Amps", 8: "PF", 10: "Mark"}
#: at most this many PTDaemon messages / marks are kept for describe()
MAX_RECORDED = 20
_UTC_OFFSET_RE = re.compile(r"^(?P<sign>[+-])(?P<h>\d{2}):?(?P<m>\d{2})$")
_CHANNEL_RE = re.compile(r"^Ch\d+$")


class MeterLogError(PowerError):
    """A meter log that cannot be used: names the file, line, column and value."""

    def __init__(self, path: str, expected: str, *, line: int | None = None, column: str | None = None,
                 value: Any = None) -> None:
        self.path, self.line, self.column, self.value, self.expected = path, line, column, value, expected
        where = path if line is None else f"{path}:{line}"
        detail = ", ".join(([f"column {column!r}"] if column else []) + ([f"value {_short(value)}"] if value is not None else []))
        super().__init__(f"{where}: {detail}: expected {expected}" if detail else f"{where}: expected {expected}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class MeterReading:
    """One reading: the power (W) over [t_begin, t_end] on the epoch clock (equal: instantaneous).
    ``energy_j`` is the meter's cumulative energy register at ``t_end``, when the log has one."""

    t_begin_epoch_s: float
    t_end_epoch_s: float
    power_w: float
    energy_j: float | None = None


@dataclass(frozen=True)
class MeterLogSource:
    """Where the readings came from: enough for an assessor to find and check the same file."""

    path: str
    sha256: str
    format: str
    rows: int  # readings
    timezone: str | None  # the tz given for timestamps without an offset
    skipped_lines: int = 0  # PTDaemon message continuations and other non-reading lines
    ignored_columns: tuple[str, ...] = ()
    #: PTDaemon messages: level -> count, and the first few (line, level, text)
    message_counts: tuple[tuple[str, int], ...] = ()
    messages: tuple[tuple[int, str, str], ...] = ()
    marks: tuple[str, ...] = ()  # PTDaemon marks, in order of appearance
    channels: int | None = None  # PTDaemon per-channel groups (None: single channel / not PTDaemon)


@dataclass(frozen=True)
class MeterLog:
    """Readings of one meter, sorted by time, with their provenance."""

    readings: tuple[MeterReading, ...]
    source: MeterLogSource
    scope: str
    resolution_w: float
    accuracy_rel: float | None = None

    def to_timeline(self, epoch_s: float, monotonic_s: float) -> list[Reading]:
        """The readings on a monotonic timeline given one pair of clock readings taken together
        (the fleet manifest's ``timeline``): ``t = epoch - epoch_s + monotonic_s``, as the
        rack arithmetic's own :class:`~icb_bench.bench.meter_energy.Reading`."""
        if not (_finite(epoch_s) and _finite(monotonic_s)):
            raise ValueError(f"timeline (epoch_s={epoch_s!r}, monotonic_s={monotonic_s!r}): expected two finite numbers of seconds")
        shift = monotonic_s - epoch_s
        return [Reading(r.t_begin_epoch_s + shift, r.t_end_epoch_s + shift, r.power_w, r.energy_j) for r in self.readings]

    def describe(self) -> dict[str, Any]:
        """Provenance in the shape of the power readers' describe()."""
        rs = self.readings
        intervals = [r.t_end_epoch_s - r.t_begin_epoch_s for r in rs]
        gaps = [b.t_end_epoch_s - a.t_end_epoch_s for a, b in zip(rs, rs[1:])]
        src = self.source
        d: dict[str, Any] = {
            "name": "meter-log",
            "scope": self.scope,
            "method": "meter-log",
            "reads": f"{src.format} meter log {src.path}",
            "path": src.path,
            "sha256": src.sha256,
            "format": src.format,
            "rows": src.rows,
            "timezone": src.timezone,
            "t_begin_epoch_s": rs[0].t_begin_epoch_s,
            "t_end_epoch_s": rs[-1].t_end_epoch_s,
            "interval_s": {"min": min(intervals), "max": max(intervals)},
            "max_gap_s": max(gaps) if gaps else None,
            "energy_register": any(r.energy_j is not None for r in rs),
            "resolution_w": self.resolution_w,
            "resolution_note": "inferred from the finest decimal place the log prints",
            "accuracy_rel": self.accuracy_rel,
            "skipped_lines": src.skipped_lines,
        }
        if src.ignored_columns:
            d["ignored_columns"] = list(src.ignored_columns)
        if src.format == "ptdaemon":
            d.update(
                messages=dict(src.message_counts),
                first_messages=[list(m) for m in src.messages],
                marks=list(src.marks),
                channels=src.channels,
            )
        return d


# ----------------------------------------------------------------------------------- parsing


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(slots=True)  # up to MAX_READINGS of them
class _Row:
    line: int
    t_end_epoch_s: float
    time_raw: str
    time_column: str
    interval_s: float
    power_w: Decimal
    power_exponent_w: Decimal  # weight of the last significant printed digit, in W
    energy_j: Decimal | None = None
    energy_raw: str | None = None
    energy_column: str | None = None


@dataclass
class _Ctx:
    path: str
    zone: dt.tzinfo | None
    tz_name: str | None
    scope: str = "rack"
    skipped_lines: int = 0
    ignored_columns: tuple[str, ...] = ()
    message_counts: dict[str, int] = field(default_factory=dict)
    messages: list[tuple[int, str, str]] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    channels: int | None = None

    def fail(self, expected: str, line: int | None = None, column: str | None = None, value: Any = None) -> MeterLogError:
        return MeterLogError(self.path, expected, line=line, column=column, value=value)

    def decimal(self, raw: str, line: int, column: str, *, non_negative: bool = True) -> Decimal:
        text = raw.strip()
        try:
            d = Decimal(text)
        except InvalidOperation:
            d = None
        # a finite Decimal can still overflow a float ("1E+400")
        if d is None or not d.is_finite() or not math.isfinite(float(d)) or (non_negative and d < 0):
            raise self.fail("a finite number" + (" >= 0" if non_negative else ""), line, column, raw)
        return d

    def quantity(self, raw: str, line: int, column: str, kind: str, scale: Decimal = Decimal(1)) -> Decimal:
        """A non-negative reading times ``scale`` (to SI), at most :data:`QUANTITY_MAX` of ``kind``."""
        si = self.decimal(raw, line, column) * scale
        top, unit, why = QUANTITY_MAX[kind]
        if si > top:
            shown = f"{float(top):,.6g} {unit}" + ("" if scale == 1 else f" ({float(top / scale):,.6g} in {column})")
            raise self.fail(f"at most {shown}: {why}", line, column, raw)
        return si

    def in_range(self, epoch_s: float, raw: str, line: int, column: str) -> float:
        lo, hi = EPOCH_RANGE_S
        if not lo <= epoch_s < hi:
            hint = " (milliseconds? divide by 1000)" if column == "epoch_s" else ""
            raise self.fail(f"a time between 2000 and 2100{hint}", line, column, raw)
        return epoch_s

    def room(self, rows: list["_Row"], line: int) -> None:
        """Refuse a reading past :data:`MAX_READINGS` (before parsing it)."""
        if len(rows) >= MAX_READINGS:
            raise self.fail(f"at most {MAX_READINGS:,} readings in one log (split it per run)", line)

    def epoch(self, naive_or_aware: dt.datetime, raw: str, line: int, column: str) -> float:
        """Epoch seconds of a parsed timestamp; naive ones through the given zone."""
        t = naive_or_aware
        if t.tzinfo is None:
            if self.zone is None:
                raise self.fail("a timestamp with a UTC offset (or give the log's timezone, tz='UTC' / '+08:00' / 'Asia/Shanghai')",
                                line, column, raw)
            a, b = t.replace(tzinfo=self.zone, fold=0), t.replace(tzinfo=self.zone, fold=1)
            if a.utcoffset() != b.utcoffset():
                raise self.fail(f"a local time that exists once in {self.tz_name} (this one is skipped or repeated by a "
                                "daylight-saving change: log with a UTC offset)", line, column, raw)
            t = a
        try:
            epoch_s = t.timestamp()
        except (OverflowError, ValueError):  # year 1 or 9999 pushed past the calendar by its offset
            epoch_s = math.nan
        return self.in_range(epoch_s, raw, line, column)


def _exponent_w(value: Decimal, scale: Decimal) -> Decimal:
    """The weight of the last significant digit printed, in W: '23.430000' -> 0.01."""
    exp = value.normalize().as_tuple().exponent if value != 0 else 0
    return Decimal(1).scaleb(exp if isinstance(exp, int) else 0) * scale


def parse_zone(path: str, tz: str | None) -> dt.tzinfo | None:
    """The zone ``tz`` names (None: none given); :class:`MeterLogError` naming ``path`` otherwise."""
    if tz is None:
        return None
    text = tz.strip()
    if text.upper() in ("UTC", "Z"):
        return dt.timezone.utc
    m = _UTC_OFFSET_RE.match(text)
    if m:
        minutes = int(m.group("h")) * 60 + int(m.group("m"))
        if minutes >= 24 * 60:
            raise MeterLogError(path, "a UTC offset below 24 h", column="tz", value=tz)
        return dt.timezone(dt.timedelta(minutes=-minutes if m.group("sign") == "-" else minutes))
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise MeterLogError(path, "'UTC', an offset such as '+08:00', or an IANA zone such as 'Asia/Shanghai'",
                            column="tz", value=tz) from None


def _read_text(path: Path) -> tuple[str, str]:
    """(text, sha256 of the bytes), a regular file bounded by MAX_LOG_BYTES; errors name the file."""
    name = str(path)
    try:
        data = read_regular_file(path, MAX_LOG_BYTES)
    except UnreadableFile as exc:
        raise MeterLogError(name, f"a readable file: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    try:
        return data.decode("utf-8-sig"), digest
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise MeterLogError(name, f"UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start} is not)", line=line) from None


def _iso_time(ctx: _Ctx, raw: str, line: int, column: str) -> float:
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ctx.fail("an ISO 8601 time such as 2024-05-05T13:06:44.250+08:00", line, column, raw) from None
    return ctx.epoch(t, raw, line, column)


def _epoch_time(ctx: _Ctx, raw: str, line: int, column: str) -> float:
    return ctx.in_range(float(ctx.decimal(raw, line, column)), raw, line, column)


def _one_of(ctx: _Ctx, names: list[str], table: dict[str, Any], what: str, line: int, required: bool) -> str | None:
    present = [n for n in names if n in table]
    if len(present) > 1:
        raise ctx.fail(f"one {what} column, not {' and '.join(present)}", line, "header", ",".join(names))
    if not present and required:
        raise ctx.fail(f"a {what} column ({' or '.join(table)})", line, "header", ",".join(names))
    return present[0] if present else None


def _parse_csv(ctx: _Ctx, text: str) -> list[_Row]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    cols: dict[str, str | None] = {}
    rows: list[_Row] = []
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = [c.strip().lower() for c in cells]
                dup = sorted({n for n in header if header.count(n) > 1})
                if dup or "" in header:
                    raise ctx.fail("distinct, non-empty column names", line, dup[0] if dup else "", ",".join(header))
                cols = {
                    "time": _one_of(ctx, header, TIME_COLUMNS, "time", line, True),
                    "power": _one_of(ctx, header, POWER_COLUMNS, "power", line, True),
                    "energy": _one_of(ctx, header, ENERGY_COLUMNS, "energy", line, False),
                    "interval": INTERVAL_COLUMN if INTERVAL_COLUMN in header else None,
                }
                ctx.ignored_columns = tuple(n for n in header if n not in cols.values())
                continue
            if len(cells) != len(header):
                raise ctx.fail(f"{len(header)} fields, as in the header", line, None, ",".join(cells))
            ctx.room(rows, line)
            rows.append(_csv_row(ctx, dict(zip(header, cells)), cols, line))
    except csv.Error as exc:
        raise ctx.fail(f"well-formed CSV ({exc})", reader.line_num) from None
    if header is None:
        raise ctx.fail("a header row (time or epoch_s, power_w or power_kw, ...)")
    return rows


def _csv_row(ctx: _Ctx, rec: dict[str, str], cols: dict[str, str | None], line: int) -> _Row:
    tcol, pcol, ecol, icol = cols["time"], cols["power"], cols["energy"], cols["interval"]
    assert tcol is not None and pcol is not None
    to_epoch = _iso_time if TIME_COLUMNS[tcol] == "iso8601" else _epoch_time
    t_end = to_epoch(ctx, rec[tcol], line, tcol)
    scale = POWER_COLUMNS[pcol]
    power_w = ctx.quantity(rec[pcol], line, pcol, f"power_w/{ctx.scope}", scale)
    interval = 0.0
    if icol and rec[icol].strip():
        interval = float(ctx.quantity(rec[icol], line, icol, "interval_s"))
    row = _Row(line, t_end, rec[tcol], tcol, interval, power_w, _exponent_w(power_w / scale, scale))
    if ecol and rec[ecol].strip():
        row.energy_j = ctx.quantity(rec[ecol], line, ecol, "energy_j", ENERGY_COLUMNS[ecol])
        row.energy_raw, row.energy_column = rec[ecol], ecol
    return row


def _ptd_message(ctx: _Ctx, fields: list[str], line: int) -> None:
    level = fields[2].strip().rstrip(":").upper()
    ctx.message_counts[level] = ctx.message_counts.get(level, 0) + 1
    if len(ctx.messages) < MAX_RECORDED:
        ctx.messages.append((line, level, ",".join(fields[3:]).strip()))


def _parse_ptdaemon(ctx: _Ctx, text: str) -> list[_Row]:
    rows: list[_Row] = []
    for line, raw_line in enumerate(io.StringIO(text, newline="\n"), 1):  # lazily: no list of every line
        s = raw_line.strip()
        if not s:
            continue
        fields = [f.strip() for f in s.split(",")]
        if fields[0] != "Time" or len(fields) < 3:
            ctx.skipped_lines += 1  # a message's continuation ("Buffer was ..."), a banner
            continue
        if fields[2] != "Watts":
            _ptd_message(ctx, fields, line)
            continue
        for i, lit in PTDAEMON_LITERALS.items():
            if i >= len(fields) or fields[i] != lit:
                raise ctx.fail(f"{lit!r} as field {i + 1} of a PTDaemon reading line", line, f"field {i + 1}",
                               fields[i] if i < len(fields) else None)
        try:
            t = dt.datetime.strptime(fields[1], PTDAEMON_TIME_FORMAT)
        except ValueError:
            raise ctx.fail("a PTDaemon time MM-DD-YYYY HH:MM:SS.mmm", line, "Time", fields[1]) from None
        t_end = ctx.epoch(t, fields[1], line, "Time")
        ctx.room(rows, line)
        power = ctx.quantity(fields[3], line, "Watts", f"power_w/{ctx.scope}")
        rows.append(_Row(line, t_end, fields[1], "Time", PTDAEMON_INTERVAL_S, power, _exponent_w(power, Decimal(1))))
        mark = fields[11] if len(fields) > 11 else ""
        if mark and mark not in ctx.marks and len(ctx.marks) < MAX_RECORDED:
            ctx.marks.append(mark)
        channels = sum(1 for f in fields[12:] if _CHANNEL_RE.match(f))
        ctx.channels = max(ctx.channels or 0, channels) or None
    return rows


_PARSERS: dict[str, Callable[[_Ctx, str], list[_Row]]] = {"csv": _parse_csv, "ptdaemon": _parse_ptdaemon}


def _readings(ctx: _Ctx, rows: list[_Row]) -> list[MeterReading]:
    """Check the order, overlap and energy of the rows; the readings they make."""
    if not rows:
        raise ctx.fail("at least one reading (the log has none)")
    out: list[MeterReading] = []
    prev: _Row | None = None
    prev_energy: _Row | None = None
    for r in rows:
        t_begin = r.t_end_epoch_s - r.interval_s
        if prev is not None:
            if r.t_end_epoch_s <= prev.t_end_epoch_s:
                raise ctx.fail(f"a time after the previous reading's ({prev.time_raw!r}, line {prev.line})", r.line,
                               r.time_column, r.time_raw)
            overlap = prev.t_end_epoch_s - t_begin
            if overlap > OVERLAP_TOLERANCE_REL * r.interval_s:
                raise ctx.fail(f"an interval not overlapping the previous reading's (line {prev.line}; overlap {overlap:.3f} s)",
                               r.line, r.time_column, r.time_raw)
        if r.energy_j is not None:
            if prev_energy is not None and prev_energy.energy_j is not None and r.energy_j < prev_energy.energy_j:
                raise ctx.fail(f"a cumulative energy register that does not decrease (line {prev_energy.line}: "
                               f"{prev_energy.energy_raw})", r.line, r.energy_column, r.energy_raw)
            prev_energy = r
        out.append(MeterReading(t_begin, r.t_end_epoch_s, float(r.power_w), None if r.energy_j is None else float(r.energy_j)))
        prev = r
    return out


def load_meter_log(path: str | os.PathLike[str], fmt: str = "csv", *, scope: str = "rack",
                   accuracy_rel: float | None = None, tz: str | None = None) -> MeterLog:
    """Load a meter log (``fmt``: ``"csv"`` or ``"ptdaemon"``; see the module docstring).

    ``scope`` is what the meter measures; ``accuracy_rel`` its stated accuracy (e.g. 0.005);
    ``tz`` the timezone of timestamps written without an offset (required for PTDaemon logs).
    Raises :class:`MeterLogError` (a PowerError) naming the file, line, column and value."""
    name = os.fspath(path)
    if fmt not in _PARSERS:
        raise MeterLogError(name, f"a format among {', '.join(_PARSERS)}", column="format", value=fmt)
    if scope not in ("rack", "node", "device"):
        raise MeterLogError(name, "scope 'rack', 'node' or 'device'", column="scope", value=scope)
    if accuracy_rel is not None and not (_finite(accuracy_rel) and 0 < accuracy_rel < 1):
        raise MeterLogError(name, "an accuracy above 0 and below 1 (relative to the reading)", column="accuracy_rel", value=accuracy_rel)
    zone = parse_zone(name, tz)
    text, digest = _read_text(Path(path))
    ctx = _Ctx(name, zone, tz, scope)
    rows = _PARSERS[fmt](ctx, text)
    readings = _readings(ctx, rows)
    source = MeterLogSource(
        path=name,
        sha256=digest,
        format=fmt,
        rows=len(readings),
        timezone=tz,
        skipped_lines=ctx.skipped_lines,
        ignored_columns=ctx.ignored_columns,
        message_counts=tuple(sorted(ctx.message_counts.items())),
        messages=tuple(ctx.messages),
        marks=tuple(ctx.marks),
        channels=ctx.channels,
    )
    resolution_w = float(min(r.power_exponent_w for r in rows))
    return MeterLog(tuple(readings), source, scope, resolution_w, accuracy_rel)
