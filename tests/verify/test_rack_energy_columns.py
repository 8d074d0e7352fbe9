"""verify's vectorised rack energy (``source_energy_columns``, through ``parse_trace`` and
``source_energy_of``) gives the figure the reading-by-reading arithmetic (``source_energy``)
gives (its energy bit for bit), and refuses every window that arithmetic refuses, with its reason."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from icb_bench.bench.meter_energy import (MeterSeries, MeterSpec, RackInputError, Reading, ReadingColumns,
                                          SourceEnergy, source_energy, source_energy_columns)
from icb_bench.verify.rack_energy import energy_problems, parse_trace, source_energy_of

CASES = 1500


def _random_source(rng: np.random.Generator, grid_s: float = 0.0,
                   source_id: str = "pdu-0") -> tuple[MeterSpec, list[Reading], tuple[float, float]]:
    """A source's readings as a run may record them (a rate of 1..100 Hz, jitter, interval
    averages, gaps, failed reads, frozen values, source timestamps, any order) and a window;
    ``grid_s``: their times rounded to multiples of it (equal times within and across sources)."""
    hz = float(np.exp(rng.uniform(0.0, math.log(100.0))))
    n = int(rng.integers(5, 400))
    t_s = 1000.0 + np.arange(n) / hz + rng.normal(0.0, 0.05 / hz, n)
    if rng.random() < 0.3:  # a gap: the source stopped answering for a while
        cut = int(rng.integers(0, n))
        t_s[cut:] += rng.uniform(0.0, 8.0)
    if grid_s:
        t_s = np.round(t_s / grid_s) * grid_s
    width_s = rng.uniform(0.0, 1.0 / hz, n) if rng.random() < 0.4 else np.zeros(n)
    frozen = rng.random() < 0.1
    power_w = np.full(n, 5000.0) if frozen else 5000.0 + rng.normal(0.0, 50.0, n)
    ok = rng.random(n) > (0.02 if rng.random() < 0.3 else 0.0)
    stamps = [f"T{k // 2}" for k in range(n)] if rng.random() < 0.2 else None
    readings = [Reading(float(t), float(t + w), float(p) if good else None, ok=bool(good),
                        error=None if good else "timeout", source_time=stamps[k] if stamps else None)
                for k, (t, w, p, good) in enumerate(zip(t_s, width_s, power_w, ok))]
    if rng.random() < 0.3:
        readings = [readings[i] for i in rng.permutation(n)]
    method = "meter-log" if rng.random() < 0.3 else "polled"
    spec = MeterSpec(source_id, "rack", method, 0.01,  # type: ignore[arg-type]
                     resolution_w=float(rng.choice([0.0, 1.0])),
                     interval_s=float(rng.choice([0.0, 0.5, 20.0], p=[0.8, 0.15, 0.05])),
                     period_s=None if method == "meter-log" else 1.0 / hz)
    span = (float(t_s.min()), float(t_s.max() + width_s.max()))
    t0 = rng.uniform(span[0] - 1.0, span[1])
    return spec, readings, (t0, t0 + rng.uniform(1.0, 1.2 * (span[1] - span[0]) + 1.0))


def _columns(readings: list[Reading]) -> ReadingColumns:
    nan = float("nan")
    stamps = [r.source_time for r in readings]
    return ReadingColumns.of(np.array([r.t_begin_s for r in readings]), np.array([r.t_end_s for r in readings]),
                          np.array([nan if r.power_w is None else r.power_w for r in readings]),
                          np.array([nan if r.energy_j is None else r.energy_j for r in readings]),
                          np.array([r.ok for r in readings]),
                          np.array(stamps, dtype=object) if any(s is not None for s in stamps) else None)


def test_random_windows_give_the_same_figure_both_ways() -> None:
    rng = np.random.default_rng(20261201)
    statuses: dict[str, int] = {}
    for case in range(CASES):
        spec, readings, (t0, t1) = _random_source(rng)
        want = source_energy(MeterSeries(spec, readings), t0, t1)
        got = source_energy_columns(spec, _columns(readings), t0, t1)
        statuses[want.status] = statuses.get(want.status, 0) + 1
        # a figure exactly where the reading path gives one (no needless fall-back), and the same one
        assert (got is not None) == (want.status == "ok"), (case, want)
        if got is not None:
            _assert_same(got, want)
    # every verdict is drawn often enough to mean something
    assert min(statuses.get(s, 0) for s in ("ok", "insufficient", "missing")) > CASES // 20, statuses


def _assert_same(got: SourceEnergy, want: SourceEnergy) -> None:
    """The same figure: every field equal, the uncertainty to float rounding (numpy squares its
    deviations, the reading path raises them to the power 2)."""
    assert (got.u_energy_j is None) == (want.u_energy_j is None)
    assert got.u_energy_j is None or got.u_energy_j == pytest.approx(want.u_energy_j, rel=1e-12)
    assert got.components_rel == pytest.approx(want.components_rel, rel=1e-12)
    assert {**vars(got), "u_energy_j": None, "components_rel": None} == {**vars(want), "u_energy_j": None,
                                                                          "components_rel": None}


def _trace(rows: list[dict[str, Any]]):
    buf = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buf, index=False)
    return parse_trace("power/readings.parquet", buf.getvalue())


def _rows(source_id: str, power_w=lambda k: 1000.0 + k % 2, *, t_from_s: float = 0.0, n: int = 130, hz: float = 2.0,
          **cells: Any) -> list[dict[str, Any]]:
    """``n`` readings of one source at ``hz`` from ``t_from_s`` (``power_w(k)``; other cells
    ``cells[name](k)``), as the run writes them."""
    return [{"source_id": source_id, "t_begin_s": t_from_s + k / hz, "t_end_s": t_from_s + k / hz,
             "power_w": power_w(k), "energy_j": None, "ok": True, "error": None, "source_time": None,
             **{c: v(k) for c, v in cells.items()}} for k in range(n)]


SPEC = MeterSpec("pdu-A", "rack", "polled", 0.01, resolution_w=1.0, period_s=0.5)


def _both(trace, spec: MeterSpec, window: tuple[float, float], t_load_s: float = -math.inf) -> SourceEnergy:
    """The figure through the columns (asserted equal to the reading path's) and whether they gave it."""
    got = source_energy_of(trace, spec.source_id, spec, t_load_s, window)
    rows = [r for r in trace.rows_of(spec.source_id) if r[0] >= t_load_s]
    _assert_same(got, source_energy(MeterSeries(spec, [Reading(*r) for r in rows]), *window))
    return got


def test_a_shared_file_gives_each_source_its_own_readings_since_the_load() -> None:
    trace = _trace(_rows("pdu-A", lambda k: 1000.0 + k % 2) + _rows("pdu-B", lambda k: 9000.0 + k % 3)
                   + _rows("pdu-A", lambda k: 1e6, t_from_s=-50.0, n=20))  # A's idle readings, before the load
    got = _both(trace, SPEC, (5.0, 60.0), t_load_s=0.0)
    assert got.status == "ok" and got.energy_j == pytest.approx(1000.5 * 55.0, rel=1e-3)
    cols = trace.columns_of("pdu-A")
    _assert_same(source_energy_columns(SPEC, cols, 5.0, 60.0, since_s=0.0), got)


def test_only_readings_wholly_inside_count() -> None:
    # 1 s averages over [k/2, k/2 + 1]: the one across each edge reads 10x the power, those only
    # touching an edge are outside
    rows = _rows("pdu-A", t_end_s=lambda k: k / 2 + 1.0)
    for r in rows:
        if r["t_begin_s"] < 10.0 < r["t_end_s"] or r["t_begin_s"] < 50.0 < r["t_end_s"]:
            r["power_w"] = 10_000.0
    got = _both(_trace(rows), SPEC, (10.0, 50.0))
    inside = [r["power_w"] for r in rows if 10.0 <= r["t_begin_s"] and r["t_end_s"] <= 50.0]
    assert (got.status, got.readings_inside, got.readings_dropped_at_edges) == ("ok", len(inside), 2)
    assert got.energy_j == math.fsum(inside) / len(inside) * 40.0


@pytest.mark.parametrize(("cells", "why"), [
    ({"power_w": lambda k: 1234.0}, "stale source: every one of the"),
    ({"power_w": lambda k: 1234.0, "source_time": lambda k: "2026-12-01T10:00:00Z"}, "reading time stayed"),
    ({"ok": lambda k: k < 60, "error": lambda k: None if k < 60 else "timeout"}, "source stopped answering"),
    ({"ok": lambda k: k != 70, "error": lambda k: None if k != 70 else "timeout"}, "1 read error(s) inside"),
])
def test_stale_and_dead_sources_give_no_figure(cells: dict[str, Any], why: str) -> None:
    trace = _trace(_rows("pdu-A", **cells))
    cols = trace.columns_of("pdu-A")
    assert source_energy_columns(SPEC, cols, 5.0, 60.0) is None
    got = _both(trace, SPEC, (5.0, 60.0))
    assert got.status == "missing" and got.energy_j is None and why in (got.reason or ""), got.reason


def test_fewer_than_ten_readings_inside_are_insufficient() -> None:
    trace = _trace(_rows("pdu-A", hz=1.0, n=40))
    spec = MeterSpec("pdu-A", "rack", "polled", 0.01, period_s=1.0)
    assert _both(trace, spec, (10.0, 19.0)).status == "ok"  # 10 readings at 1 Hz: k = 10..19
    short = _both(trace, spec, (10.5, 19.0))  # 9 readings inside
    assert short.status == "insufficient" and "9 readings inside the 8.5 s window (at least 10" in (short.reason or "")


def test_a_slow_meter_log_is_insufficient() -> None:
    trace = _trace(_rows("pdu-A", hz=0.5, n=40))
    got = _both(trace, MeterSpec("pdu-A", "rack", "meter-log", 0.01), (0.0, 70.0))
    assert got.status == "insufficient" and "one reading every 2 s" in (got.reason or "")


def _problems(trace, poll_hz: float) -> list[str]:
    """``energy_problems`` of a rack figure whose energy is its PDU's mean power over [5, 60] s × 55 s."""
    inside = [r[2] for r in trace.rows_of("pdu-A") if 5.0 <= r[0] <= 60.0]
    agg = {"assurance": "rack-meter", "rack_id": "R0", "power_sources": ["pdu-A"], "t_begin_s": 5.0,
           "t_end_s": 60.0, "energy_j": math.fsum(inside) / len(inside) * 55.0}
    power = {"pdu-A": {"source_id": "pdu-A", "scope": "rack", "rack": "R0", "kind": "redfish", "accuracy_rel": 0.01,
                       "trace_file": "power/readings.parquet", "poll_hz": poll_hz}}
    return energy_problems(agg, power, -math.inf, lambda rel: trace, lambda a, b: math.isclose(a, b, rel_tol=1e-9))


@pytest.mark.parametrize(("poll_hz", "refused"), [(0.99, True), (1.0, False), (100.0, False), (100.5, True)])
def test_a_poll_rate_outside_1_to_100_hz_is_refused(poll_hz: float, refused: bool) -> None:
    problems = _problems(_trace(_rows("pdu-A", hz=4.0, n=300)), poll_hz)
    assert bool(problems) == refused, problems
    assert not refused or f"poll_hz {poll_hz!r} is not a rate in 1..100 Hz" in problems[0]


@pytest.mark.parametrize(("cells", "why"), [
    ({"power_w": lambda k: math.inf if k == 30 else 1000.0}, "reading.power_w: got inf; expected a finite number"),
    ({"t_end_s": lambda k: k / 2 - 1.0}, "reading.t_end_s"),
    ({"t_begin_s": lambda k: k // 2, "t_end_s": lambda k: k // 2}, None),  # whole seconds as integers: read
])
def test_cells_the_columns_do_not_take_are_judged_on_the_readings(cells: dict[str, Any], why: str | None) -> None:
    trace = _trace(_rows("pdu-A", **cells))
    problems = _problems(trace, 2.0)
    if why is None:
        assert trace.columns is None and not problems, problems
    else:
        assert len(problems) == 1 and "energy not recomputable from its trace" in problems[0] and why in problems[0]


# -- one shared trace file, as verify reads it ------------------------------------------------------------------
FILES = 100
_FIELDS = ("t_begin_s", "t_end_s", "power_w", "energy_j", "ok", "error", "source_time")


def _row(source_id: str | None, r: Reading) -> dict[str, Any]:
    """A reading as ``bench/fleet_power.py`` writes it to ``power/readings.parquet``."""
    return {"source_id": source_id, **{f: getattr(r, f) for f in _FIELDS}}


Sources = dict[str, tuple[MeterSpec, tuple[float, float]]]  # each source's meter and window


def _random_file(rng: np.random.Generator) -> tuple[list[dict[str, Any]], Sources, float]:
    """A site's trace file: 2..6 random sources (some on a time grid, some with two readings at
    one time, some another's twin at exactly its times, some with a failed read in the middle of
    their window, some with a row :class:`Reading` refuses), maybe rows of no source, arranged as
    the run writes them, merged by time or shuffled; each source's meter and window, and the
    start of the load."""
    t_load_s = -math.inf if rng.random() < 0.4 else float(rng.uniform(998.0, 1001.0))
    sources: Sources = {}
    by_source: list[list[dict[str, Any]]] = []
    readings: list[Reading] = []
    for k in range(int(rng.integers(2, 7))):
        sid = f"pdu-{k}"
        twin = bool(k) and rng.random() < 0.2
        # a grid of at most 2 periods at 100 Hz: equal times, no gap
        spec, mine, window = _random_source(rng, float(rng.choice([0.0, 0.001, 0.01, 0.02])), sid)
        if twin:  # the previous source's readings, times and window
            mine, window = readings, sources[f"pdu-{k - 1}"][1]
        readings = mine
        rows = [_row(sid, r) for r in mine]
        if rng.random() < 0.4:  # a second reading at a tenth of the times, of another power
            rows += [{**rows[i], "power_w": None if rows[i]["power_w"] is None else rows[i]["power_w"] + 7.0}
                     for i in rng.choice(len(rows), len(rows) // 10).tolist()]
        mid_s = max(0.5 * (window[0] + window[1]), t_load_s)
        if rng.random() < 0.25:  # a failed read inside the window: the columns give no figure
            rows.append(_row(sid, Reading(mid_s, mid_s, None, ok=False, error="timeout")))
        if rng.random() < 0.1:  # an interval ending before it begins, after the load: refused
            rows.append({**_row(sid, Reading(mid_s, mid_s, 5000.0)), "t_end_s": mid_s - 1.0})
        sources[sid] = (spec, window)
        by_source.append(rows)
    if rng.random() < 0.3:  # rows of no source, at a source's times: nobody's readings
        by_source.append([{**row, "source_id": None, "power_w": 1e6} for row in by_source[0][::7]])
    rows = [row for rows in by_source for row in rows]
    arrangement = rng.choice(["as written", "by time", "shuffled"], p=[0.2, 0.2, 0.6])
    if arrangement == "by time":
        rows.sort(key=lambda row: row["t_begin_s"])
    elif arrangement == "shuffled":
        rows = [rows[i] for i in rng.permutation(len(rows))]
    return rows, sources, t_load_s


def _reference(spec: MeterSpec, rows: list[dict[str, Any]], t_load_s: float,
               window: tuple[float, float]) -> SourceEnergy | RackInputError:
    """``source_energy`` of the source's rows in the file's order since the load (the run's cut),
    or the error a reading's check raises."""
    try:
        readings = [Reading(*(row[f] for f in _FIELDS)) for row in rows if row["t_begin_s"] >= t_load_s]
        return source_energy(MeterSeries(spec, readings), *window)
    except RackInputError as exc:
        return exc


def _equal_times(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """How many readings share a t_begin_s with an earlier one of their own source, and how many
    (source, time) pairs share it with another source's."""
    times: dict[str | None, set[float]] = {}
    within = 0
    for row in rows:
        seen = times.setdefault(row["source_id"], set())
        within += row["t_begin_s"] in seen
        seen.add(row["t_begin_s"])
    pooled = [t for sid, ts in times.items() if sid is not None for t in ts]
    return within, len(pooled) - len(set(pooled))


def _assert_sorted_run(cols: ReadingColumns, rows: list[dict[str, Any]]) -> None:
    """``cols`` are exactly ``rows`` (one source's, in the file's order) sorted by t_begin_s, equal
    times in the file's order (Python's stable sort, not numpy's)."""
    want = sorted(rows, key=lambda row: row["t_begin_s"])
    nan = float("nan")
    for f in ("t_begin_s", "t_end_s", "power_w", "energy_j", "ok"):
        assert np.array_equal(getattr(cols, f), np.array([nan if row[f] is None else row[f] for row in want]),
                              equal_nan=f != "ok"), f
    stamps = [None] * len(want) if cols.source_time is None else cols.source_time.tolist()
    assert stamps == [row["source_time"] for row in want]


def test_a_shuffled_file_of_many_sources_gives_each_the_figure_of_its_own_readings(tmp_path) -> None:
    rng = np.random.default_rng(20261202)
    outcomes: dict[str, int] = {}
    fell_back = excused = within = across = orphans = 0
    for case in range(FILES):
        rows, sources, t_load_s = _random_file(rng)
        path = tmp_path / f"readings-{case}.parquet"  # the file `bench run` writes, read as verify reads it
        pd.DataFrame(rows).to_parquet(path, index=False)
        trace = parse_trace("power/readings.parquet", path.read_bytes())
        assert trace.columns is not None, case  # every column of a type the columns take
        w, a = _equal_times(rows)
        within, across, orphans = within + w, across + a, orphans + any(row["source_id"] is None for row in rows)
        for sid, (spec, window) in sources.items():
            mine = [row for row in rows if row["source_id"] == sid]
            cols = trace.columns_of(sid)
            _assert_sorted_run(cols, mine)
            want = _reference(spec, mine, t_load_s, window)
            fast = source_energy_columns(spec, cols, *window, since_s=t_load_s)
            # the columns give a figure exactly where the readings do (a wrongly sorted or split
            # source cannot hide behind the fall-back), but for equal times of a source with its own
            # timestamps: _inside_polls leaves judge's order of equal midpoints to the readings
            ok = isinstance(want, SourceEnergy) and want.status == "ok"
            assert fast is None or ok, (case, sid, fast, want)
            if fast is None and ok:
                assert any(row["source_time"] for row in mine) and _equal_times(mine)[0] > 0, (case, sid, want)
                excused += 1
            try:
                got = source_energy_of(trace, sid, spec, t_load_s, window)
            except RackInputError as exc:
                assert isinstance(want, RackInputError) and str(exc) == str(want), (case, sid, exc, want)
                outcomes["refused"] = outcomes.get("refused", 0) + 1
                continue
            assert isinstance(want, SourceEnergy), (case, sid, want)
            _assert_same(got, want)
            outcomes[want.status] = outcomes.get(want.status, 0) + 1
            fell_back += fast is None
    # every outcome, both paths, and equal times within and across sources, drawn often enough
    assert min(outcomes.get(s, 0) for s in ("ok", "insufficient", "missing")) > 15, outcomes
    assert outcomes.get("refused", 0) >= 10 and fell_back > 100, (outcomes, fell_back)
    assert excused <= outcomes["ok"] // 10, (excused, outcomes)
    assert within > 1000 and across > 1000 and orphans >= 10, (within, across, orphans)
