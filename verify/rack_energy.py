"""A rack figure's energy, recomputed from the meter readings its fleet record holds.

`bench run` wrote every raw reading of every rack and node meter to ``power/readings.parquet``
(``bench/fleet_power.py``) and took the rack's energy over exactly the rack window with
:func:`icb_bench.bench.meter_energy.source_energy`. Verify reads the same readings — the bytes
whose sha256 the file index holds — and runs the same function on them, with the same meter
description (:func:`~icb_bench.bench.meter_energy.meter_spec`) and the same cut at the start of
the load (``timeline.load_s``): on the trace's columns where they give a figure
(:func:`~icb_bench.bench.meter_energy.source_energy_columns`, vectorised: a site's ~10^6 readings
in a fraction of a second), on the readings themselves otherwise (every refusal and its reason is
``source_energy``'s). An energy that differs beyond float rounding, a source that gives
no good energy now, or a set of sources that leaves out a meter of the rack makes the figure not
count. ``bench.meter_energy`` is pure (no numpy, no torch) and imported only when a figure is checked;
numpy and pandas are imported when a trace is read.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

__all__ = ["TraceRows", "Trace", "parse_trace", "expected_sources", "energy_problems"]

#: a trace file's rows by source id: (t_begin_s, t_end_s, power_w, energy_j, ok, error, source_time)
TraceRows = dict[str, list[tuple[Any, ...]]]
_COLUMNS = ("t_begin_s", "t_end_s", "power_w", "energy_j", "ok", "error", "source_time")
#: a trace written before source ids: every row is the one source's
_ANY = ""


@dataclass
class Trace:
    """A trace file's readings by ``source_id`` (a site's 3,000 racks may share one file): as
    columns (:meth:`columns_of`) and as the rows the run read back (:meth:`rows`, built on first use)."""

    frame: Any  # the file's pandas DataFrame
    #: each row's source, numbered (-1: none), and the numbers by source id (``_ANY``: a file without ids)
    codes: Any
    code_of: dict[str, int]
    #: every source's readings sorted by source, then t_begin_s (None: a column has a type only the
    #: reading path takes), and each source's run of them
    columns: Any = None
    spans: Any = None
    _rows: TraceRows | None = field(default=None, repr=False)

    def rows(self) -> TraceRows:
        """Each source's rows in recorded order, each cell as the run read it back
        (``bench/fleet_power.py``): a missing number None, a non-text error None."""
        if self._rows is None:
            import numpy as np

            rows = list(zip(*(_cells(self.frame, c) for c in _COLUMNS)))
            order = np.argsort(self.codes, kind="stable")
            cuts = np.searchsorted(self.codes[order], np.arange(len(self.code_of) + 1))
            self._rows = {sid: [rows[i] for i in order[cuts[k]:cuts[k + 1]].tolist()] for sid, k in self.code_of.items()}
        return self._rows

    def rows_of(self, source_id: str) -> list[tuple[Any, ...]]:
        rows = self.rows()
        return rows.get(source_id, rows.get(_ANY, []))

    def columns_of(self, source_id: str) -> Any:
        """The source's :class:`~icb_bench.bench.meter_energy.ReadingColumns` (None: see ``columns``)."""
        k = self.code_of.get(source_id, self.code_of.get(_ANY))
        if self.columns is None or k is None:
            return None
        return self.columns.span(int(self.spans[k]), int(self.spans[k + 1]))


def parse_trace(rel: str, data: bytes) -> Trace:
    """A trace file (Parquet or CSV, as ``bench.record.read_trace`` reads them), its readings
    grouped by ``source_id``. ValueError if unreadable."""
    import numpy as np
    import pandas as pd  # lazily: only a fleet record's rack figure needs it

    try:
        df = pd.read_parquet(io.BytesIO(data)) if rel.endswith(".parquet") else pd.read_csv(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - pyarrow/pandas errors of every kind: the trace is unreadable
        raise ValueError(f"unreadable ({type(exc).__name__}: {exc})") from None
    if "t_begin_s" not in df.columns or "t_end_s" not in df.columns:
        raise ValueError("has no t_begin_s/t_end_s columns")
    if "source_id" not in df.columns:
        codes, code_of = np.zeros(len(df), dtype=np.intp), {_ANY: 0}
    else:
        # numbered in order of appearance; a row without a source (NaN) is no source's (-1)
        codes, names = pd.factorize(df["source_id"], sort=False)
        code_of = {str(sid): k for k, sid in enumerate(names)}
    trace = Trace(df, codes, code_of)
    cells = _columns(df)
    if cells is not None:
        from icb_bench.bench.meter_energy import ReadingColumns

        # by source, then time, equal times in recorded order (lexsort is stable); a row without
        # t_begin_s is never after the start of the load: left out
        keep = np.flatnonzero((codes >= 0) & ~np.isnan(cells[0]))
        order = keep[np.lexsort((cells[0][keep], codes[keep]))]
        trace.columns = ReadingColumns(*(None if a is None else a[order] for a in cells))
        trace.spans = np.searchsorted(codes[order], np.arange(len(code_of) + 1))
    return trace


def _columns(df: Any) -> tuple[Any, ...] | None:
    """The file's arrays of :class:`~icb_bench.bench.meter_energy.ReadingColumns`' fields in recorded
    order, each cell what :func:`_cells` reads (a missing number NaN); None unless every column is
    of a type that makes that exact: float64 times and numbers (or no number at all), bool ok."""
    import numpy as np

    def numbers(column: str, *, times: bool = False) -> Any:
        s = df[column] if column in df.columns else None
        if s is not None and s.dtype == np.float64:
            return s.to_numpy()
        if not times and (s is None or not s.notna().any()):
            return np.full(len(df), np.nan)
        return None

    t_begin_s, t_end_s = numbers("t_begin_s", times=True), numbers("t_end_s", times=True)
    power_w, energy_j = numbers("power_w"), numbers("energy_j")
    ok = df["ok"].to_numpy() if "ok" in df.columns else np.ones(len(df), dtype=bool)
    if any(a is None for a in (t_begin_s, t_end_s, power_w, energy_j)) or ok.dtype != np.bool_:
        return None
    stamped = "source_time" in df.columns and df["source_time"].notna().any()
    source_time = np.array(_cells(df, "source_time"), dtype=object) if stamped else None
    return t_begin_s, t_end_s, power_w, energy_j, ok, source_time


def _cells(df: Any, column: str) -> list[Any]:
    """One column's cells as Python values, as the run read them back (one pass per column)."""
    n = len(df)
    if column not in df.columns:
        return [True] * n if column == "ok" else [None] * n
    s = df[column]
    if column in ("error", "source_time"):
        return [v if isinstance(v, str) else None for v in s.tolist()] if s.notna().any() else [None] * n
    if column == "ok":
        return [bool(v) for v in s.tolist()]
    values = s.tolist()
    if column in ("power_w", "energy_j"):
        values = [None if v is None or v != v else float(v) for v in values] if s.isna().any() else values
    return values


def _readings(rows: Sequence[tuple[Any, ...]], t_load_s: float) -> list[Any]:
    """The source's readings from the start of the load on (the run's cut: earlier ones are its idle
    reading); each checked as :class:`~icb_bench.bench.meter_energy.Reading` checks it."""
    from icb_bench.bench.meter_energy import Reading

    return [Reading(*row) for row in rows if row[0] >= t_load_s]


def source_energy_of(trace: Trace, source_id: str, spec: Any, t_load_s: float, window: tuple[float, float]) -> Any:
    """The :class:`~icb_bench.bench.meter_energy.SourceEnergy` of source ``source_id`` (described by
    ``spec``) over ``window`` from ``trace``'s readings since ``t_load_s``: from its columns where they give a figure, else
    from its readings (RackInputError for a reading :class:`~icb_bench.bench.meter_energy.Reading` refuses)."""
    from icb_bench.bench.meter_energy import MeterSeries, source_energy, source_energy_columns

    cols = trace.columns_of(source_id)
    if cols is not None:
        got = source_energy_columns(spec, cols, *window, since_s=t_load_s)
        if got is not None:
            return got
    return source_energy(MeterSeries(spec, _readings(trace.rows_of(source_id), t_load_s)), *window)


def expected_sources(agg: Mapping[str, Any], power: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The sources a figure of its assurance must sum: every rack meter of the rack (its A and B
    feeds), or every node meter of its nodes. Leaving one out lowers the energy and raises GFLOPS/W."""
    if agg.get("assurance") == "rack-meter":
        return sorted(sid for sid, p in power.items() if p.get("scope") == "rack" and p.get("rack") == agg.get("rack_id"))
    nodes = set(agg.get("nodes") or [])
    return sorted(sid for sid, p in power.items() if p.get("scope") == "node" and p.get("node") in nodes)


#: the polling rates a record may claim (Green500 asks at least 1 Hz; above 100 Hz no PDU answers)
POLL_HZ_RANGE = (1.0, 100.0)


def _poll_hz(entry: Mapping[str, Any], default_hz: float) -> float:
    """The rate a source was polled at, as the record says (ValueError outside :data:`POLL_HZ_RANGE`):
    a slower claimed rate would excuse gaps in its readings."""
    hz = entry.get("poll_hz", default_hz)
    if isinstance(hz, bool) or not isinstance(hz, (int, float)) or not POLL_HZ_RANGE[0] <= hz <= POLL_HZ_RANGE[1]:
        raise ValueError(f"poll_hz {hz!r} is not a rate in {POLL_HZ_RANGE[0]:g}..{POLL_HZ_RANGE[1]:g} Hz")
    return float(hz)


def energy_problems(agg: Mapping[str, Any], power: Mapping[str, Mapping[str, Any]], t_load_s: float,
                    rows_of: Callable[[str], Trace], close: Callable[[float, float], bool]) -> list[str]:
    """What is wrong with ``agg``'s ``energy_j`` (a rack- or node-meter figure whose trace digests
    hold) against the energy recomputed over ``[t_begin_s, t_end_s]``; ``rows_of(trace_file)``
    gives a trace's :class:`Trace` (ValueError when unreadable)."""
    from icb_bench.bench.fleet_power import POLL_HZ
    from icb_bench.bench.meter_energy import RackInputError, meter_spec

    sources = agg.get("power_sources") or []
    want = expected_sources(agg, power)
    left_out = [s for s in want if s not in sources]
    if left_out:
        return [f"power_sources leave out {', '.join(left_out)} of the record's {agg.get('assurance')} sources: "
                "every meter of the rack must be summed"]
    t0, t1, energy = float(agg["t_begin_s"]), float(agg["t_end_s"]), float(agg["energy_j"])
    total, problems = 0.0, []
    for sid in sources:
        entry = power[sid]
        try:
            trace = rows_of(entry["trace_file"])
            # records before `poll_hz` was written were all polled at the one rate there was
            spec = meter_spec(entry, entry.get("reader") or {}, _poll_hz(entry, POLL_HZ))
            got = source_energy_of(trace, sid, spec, t_load_s, (t0, t1))
        except (RackInputError, ValueError, TypeError, KeyError) as exc:
            problems.append(f"power source {sid!r}: energy not recomputable from its trace ({exc})")
            continue
        if got.status != "ok" or got.energy_j is None:
            problems.append(f"power source {sid!r}: its readings give no energy over the window ({got.status}: {got.reason})")
            continue
        total += got.energy_j
    if not problems and not (math.isfinite(total) and close(energy, total)):
        problems.append(f"energy_j {energy:.6g} is not the {total:.6g} J its meters' readings give over "
                        f"[{t0:.3f}, {t1:.3f}] s")
    return problems
