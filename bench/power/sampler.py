"""Background polling of power readers and energy over a bracketed window.

Usage::

    sampler = Sampler(reader)          # or Sampler([reader_a, reader_b])
    sampler.start()
    win = sampler.begin_window()
    ...                                # the timed core phase
    energy = sampler.end_window(win)   # WindowEnergy; end_window_all(win) for several readers
    rows = win.trace_rows()            # per-sample rows for the record's Parquet trace
    sampler.stop()

Energy comes from the reader's counter read at the window's edges when the reader has one
(method ``"counter"``); otherwise from the trapezoid integral of the polled power over exactly
``[t_begin, t_end]`` with the edge values interpolated (method ``"polled"``, with a ``note``);
otherwise ``"none"`` and ``energy_j=None`` -- never a made-up number.

A polled figure is given only when the readings inside the window cover it
(:mod:`~icb_bench.bench.power.coverage`: no read error inside, enough readings at the reader's
expected rate, no long gap, not a stale source); otherwise ``"none"`` with the reason in the
note -- a source that died or froze never lends the window a value held from before it. A
counter read after the fact (:meth:`Sampler.window_between`) needs counter readings within the
gap limit on both sides of each edge.

``begin_window`` and ``end_window`` each poll the readers once themselves, so the trace always
brackets the window (a sampler that was never started still gives a two-point trace). The
thread's own CPU time is in :meth:`Sampler.stats` (``cpu_fraction``).
"""

from __future__ import annotations

import collections
import contextlib
import math
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from .base import PowerError, PowerReader, PowerSample, WindowEnergy
from .coverage import DEFAULT_RULE, CoverageRule, ReadError, judge

#: trace columns written for each sample (t_s is relative to the window's begin)
TRACE_COLUMNS = (
    "reader",
    "reader_index",
    "t_s",
    "power_w",
    "energy_j",
    "sm_clock_mhz",
    "mem_clock_mhz",
    "temperature_c",
    "power_limit_w",
    "throttle_reasons",
)


def _timed(fn: Any) -> tuple[Any, float]:
    """Call ``fn()`` and return (result, midpoint of the monotonic times around the call)."""
    t0 = time.monotonic()
    value = fn()
    t1 = time.monotonic()
    return value, 0.5 * (t0 + t1)


def _interp(t: float, a: PowerSample, b: PowerSample) -> float:
    """Power at ``t`` on the straight line between samples ``a`` and ``b``."""
    assert a.power_w is not None and b.power_w is not None
    if b.t_s == a.t_s:
        return 0.5 * (a.power_w + b.power_w)
    return a.power_w + (b.power_w - a.power_w) * (t - a.t_s) / (b.t_s - a.t_s)


def integrate_power(samples: Sequence[PowerSample], t_begin_s: float, t_end_s: float) -> tuple[float | None, str | None]:
    """Trapezoid integral (J) of the polled power over exactly ``[t_begin_s, t_end_s]``.

    Samples without a power value are skipped; the power at each edge is interpolated from the
    samples around it (held constant from the nearest sample where the edge lies outside the
    trace, which is reported in the returned note). Returns ``(None, reason)`` when there is no
    power sample at all.
    """
    pts = sorted((s for s in samples if s.power_w is not None), key=lambda s: s.t_s)
    if not pts:
        return None, "no power samples"
    if t_end_s <= t_begin_s:
        return 0.0, None
    notes: list[str] = []

    def value_at(t: float) -> float:
        if t <= pts[0].t_s:
            if t < pts[0].t_s:
                notes.append("held first sample's power back to the window's begin")
            return float(pts[0].power_w)  # type: ignore[arg-type]
        if t >= pts[-1].t_s:
            if t > pts[-1].t_s:
                notes.append("held last sample's power up to the window's end")
            return float(pts[-1].power_w)  # type: ignore[arg-type]
        for a, b in zip(pts, pts[1:]):
            if a.t_s <= t <= b.t_s:
                return _interp(t, a, b)
        raise AssertionError("unreachable")  # pragma: no cover

    knots = [(t_begin_s, value_at(t_begin_s))]
    knots += [(s.t_s, float(s.power_w)) for s in pts if t_begin_s < s.t_s < t_end_s]  # type: ignore[arg-type]
    knots.append((t_end_s, value_at(t_end_s)))
    energy_j = sum(0.5 * (p0 + p1) * (t1 - t0) for (t0, p0), (t1, p1) in zip(knots, knots[1:]))
    return energy_j, ("; ".join(notes) or None)


@dataclass
class _ReaderWindow:
    """Per-reader state of one window."""

    energy_begin_j: float | None = None
    begin_note: str | None = None
    energy_end_j: float | None = None
    end_note: str | None = None
    edge_errors: list[ReadError] = field(default_factory=list)  # failed polls at the window's edges
    samples: list[PowerSample] = field(default_factory=list)  # bracketing + inside, sorted
    result: WindowEnergy | None = None


class EnergyWindow:
    """One bracketed window: edge times, edge counter reads and, once ended, results and trace."""

    def __init__(self, sampler: "Sampler") -> None:
        self.sampler = sampler
        self.t_begin_s: float = 0.0
        self.t_end_s: float | None = None
        self._per_reader: list[_ReaderWindow] = [_ReaderWindow() for _ in sampler.readers]

    @property
    def window_s(self) -> float | None:
        return None if self.t_end_s is None else self.t_end_s - self.t_begin_s

    @property
    def ended(self) -> bool:
        return self.t_end_s is not None

    @property
    def result(self) -> WindowEnergy:
        """The first (or only) reader's result."""
        return self.results[0]

    @property
    def results(self) -> list[WindowEnergy]:
        if not self.ended:
            raise RuntimeError("window not ended")
        return [rw.result for rw in self._per_reader]  # type: ignore[misc]

    def result_for(self, reader: PowerReader) -> WindowEnergy:
        """The result of one of the sampler's readers."""
        return self.results[self.sampler.readers.index(reader)]

    def trace_rows(self, reader_index: int | None = None) -> list[dict[str, Any]]:
        """Samples of the window (plus the one just before and just after, for the edges) as
        dicts with ``t_s`` relative to the window's begin; all readers unless one is named."""
        if not self.ended:
            raise RuntimeError("window not ended")
        idx = range(len(self._per_reader)) if reader_index is None else [reader_index]
        rows: list[dict[str, Any]] = []
        for i in idx:
            name = self.sampler.readers[i].name or type(self.sampler.readers[i]).__name__
            for s in self._per_reader[i].samples:
                rows.append(
                    {
                        "reader": name,
                        "reader_index": i,
                        "t_s": s.t_s - self.t_begin_s,
                        "power_w": s.power_w,
                        "energy_j": s.energy_j,
                        "sm_clock_mhz": s.sm_clock_mhz,
                        "mem_clock_mhz": s.mem_clock_mhz,
                        "temperature_c": s.temperature_c,
                        "power_limit_w": s.power_limit_w,
                        "throttle_reasons": s.throttle_reasons,
                    }
                )
        return rows


class Sampler:
    """Polls one or more readers in a background thread at ``hz`` and computes window energy.

    The loop sleeps with :meth:`threading.Event.wait` between polls (no busy-wait). Calls into a
    reader are serialised by a per-reader lock, so the edge reads of a window never race the
    thread. A reader whose ``sample()`` raises is counted in :meth:`stats` and the loop goes on.
    """

    def __init__(
        self,
        readers_or_reader: PowerReader | Sequence[PowerReader],
        hz: float = 20.0,
        *,
        max_samples: int = 2_000_000,
        coverage: CoverageRule = DEFAULT_RULE,
    ) -> None:
        if isinstance(readers_or_reader, PowerReader):
            readers: list[PowerReader] = [readers_or_reader]
        else:
            readers = list(readers_or_reader)
        if not readers:
            raise ValueError("Sampler needs at least one reader")
        if not hz > 0:
            raise ValueError(f"hz must be positive, got {hz}")
        self.readers = readers
        self.hz = float(hz)
        self.period_s = 1.0 / self.hz
        #: when polled readings are enough for a figure (see :mod:`.coverage`)
        self.coverage = coverage
        self._locks = [threading.Lock() for _ in readers]
        self._buf_lock = threading.Lock()
        self._samples: list[collections.deque[PowerSample]] = [collections.deque(maxlen=max_samples) for _ in readers]
        self._errors = [0 for _ in readers]
        self._last_error: list[str | None] = [None for _ in readers]
        self._error_log: list[collections.deque[ReadError]] = [collections.deque(maxlen=100_000) for _ in readers]
        self._poll_s: list[collections.deque[float]] = [collections.deque(maxlen=256) for _ in readers]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loops = 0
        self._thread_cpu_s = 0.0
        self._t_started: float | None = None
        self._t_stopped: float | None = None

    # -- thread ---------------------------------------------------------------------------
    def start(self) -> "Sampler":
        """Start the polling thread (idempotent while running)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop = threading.Event()
        self._t_started = time.monotonic()
        self._t_stopped = None
        self._thread = threading.Thread(target=self._run, name="icb-power-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the polling thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 5 * self.period_s))
            self._thread = None
        self._t_stopped = time.monotonic()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        cpu0 = time.thread_time()
        next_t = time.monotonic()
        stop = self._stop
        while not stop.is_set():
            for i in range(len(self.readers)):
                self._poll(i)
            self._loops += 1
            self._thread_cpu_s = time.thread_time() - cpu0
            next_t += self.period_s
            delay = next_t - time.monotonic()
            if delay < 0:  # fell behind (slow reader): do not try to catch up in a burst
                next_t = time.monotonic()
                delay = 0.0
            stop.wait(delay)
        self._thread_cpu_s = time.thread_time() - cpu0

    def _poll(self, i: int) -> PowerSample | None:
        """Take one sample of reader ``i`` and store it; None when the read failed."""
        try:
            with self._locks[i]:
                t0 = time.monotonic()
                s = self.readers[i].sample()
                t1 = time.monotonic()
        except Exception as e:  # noqa: BLE001 - keep the thread alive, count the failure
            self._errors[i] += 1
            self._last_error[i] = f"{type(e).__name__}: {e}"
            with self._buf_lock:
                self._error_log[i].append(ReadError(time.monotonic(), self._last_error[i]))  # type: ignore[arg-type]
            return None
        with self._buf_lock:
            self._samples[i].append(s)
            self._poll_s[i].append(t1 - t0)
        return s

    def interval_s(self, i: int) -> float:
        """How often reader ``i`` can give a reading: the longest of the sampler's period, the
        reader's declared ``expected_interval_s`` and the median time one of its polls takes."""
        with self._buf_lock:
            durations = sorted(self._poll_s[i])
        declared = getattr(self.readers[i], "expected_interval_s", None) or 0.0
        poll_s = durations[len(durations) // 2] if durations else 0.0
        return max(self.period_s, float(declared), poll_s)

    def _errors_between(self, i: int, t0: float, t1: float) -> list[ReadError]:
        with self._buf_lock:
            return [e for e in self._error_log[i] if t0 <= e.t_s <= t1]

    def stats(self) -> dict[str, Any]:
        """Loop count, achieved rate, read errors and the thread's own CPU time (its cost)."""
        end = self._t_stopped if self._t_stopped is not None else time.monotonic()
        wall_s = (end - self._t_started) if self._t_started is not None else 0.0
        return {
            "hz_requested": self.hz,
            "loops": self._loops,
            "hz_achieved": (self._loops / wall_s) if wall_s > 0 else None,
            "errors": list(self._errors),
            "last_error": list(self._last_error),
            "thread_cpu_s": self._thread_cpu_s,
            "wall_s": wall_s,
            "cpu_fraction": (self._thread_cpu_s / wall_s) if wall_s > 0 else None,
        }

    def samples(self, reader_index: int = 0) -> list[PowerSample]:
        """A copy of all stored samples of one reader."""
        with self._buf_lock:
            return list(self._samples[reader_index])

    def clear(self) -> None:
        """Drop stored samples (between measurements, to bound memory)."""
        with self._buf_lock:
            for d in self._samples:
                d.clear()

    # -- windows --------------------------------------------------------------------------
    def _read_counter(self, i: int) -> tuple[float | None, float, str | None]:
        """(counter value, time of the read, note) for reader ``i``."""
        reader = self.readers[i]
        if not reader.has_energy_counter:
            why = getattr(reader, "counter_note", None)
            return None, time.monotonic(), "reader has no energy counter" + (f" ({why})" if why else "")
        try:
            with self._locks[i]:
                value, t = _timed(reader.energy_j)
        except PowerError as e:
            return None, time.monotonic(), f"counter read failed: {e}"
        if value is None:
            return None, t, "counter read returned nothing"
        return float(value), t, None

    def begin_window(self) -> EnergyWindow:
        """Open a window: poll each reader once, then read the counters and the begin time."""
        win = EnergyWindow(self)
        for i, rw in enumerate(win._per_reader):
            if self._poll(i) is None:  # a sample at or before the begin, for interpolation
                rw.edge_errors.append(ReadError(time.monotonic(), f"poll at the window's begin failed: {self._last_error[i]}"))
        times = []
        for i, rw in enumerate(win._per_reader):
            rw.energy_begin_j, t, rw.begin_note = self._read_counter(i)
            times.append(t)
        win.t_begin_s = times[0] if len(times) == 1 else 0.5 * (min(times) + max(times))
        return win

    def end_window(self, win: EnergyWindow) -> WindowEnergy:
        """Close a window of a one-reader sampler and return its energy."""
        if len(self.readers) != 1:
            raise ValueError("this sampler has several readers: use end_window_all()")
        return self.end_window_all(win)[0]

    def end_window_all(self, win: EnergyWindow) -> list[WindowEnergy]:
        """Close a window: read the counters and the end time, poll once more, compute energy."""
        if win.sampler is not self:
            raise ValueError("window belongs to another sampler")
        if win.ended:
            return win.results
        times = []
        for i, rw in enumerate(win._per_reader):
            rw.energy_end_j, t, rw.end_note = self._read_counter(i)
            times.append(t)
        win.t_end_s = times[0] if len(times) == 1 else 0.5 * (min(times) + max(times))
        for i, rw in enumerate(win._per_reader):
            if self._poll(i) is None:  # a sample at or after the end, for interpolation
                rw.edge_errors.append(ReadError(time.monotonic(), f"poll at the window's end failed: {self._last_error[i]}"))
        for i, rw in enumerate(win._per_reader):
            rw.samples = self._window_samples(i, win.t_begin_s, win.t_end_s)
            rw.result = self._compute(i, win, rw)
        return win.results

    def window_between(self, t_begin_s: float, t_end_s: float) -> EnergyWindow:
        """A window fixed after the fact, from ``time.monotonic()`` edges another process reported
        (on one host the monotonic clock is system-wide). Counter values at the edges are
        interpolated from the samples' ``energy_j`` around each edge, so the counter's effective
        resolution is the polling interval; without bracketing counter samples the polled power
        is integrated. Used for node/rack readers that bracket the core phases of several devices."""
        if t_end_s < t_begin_s:
            raise ValueError("t_end_s before t_begin_s")
        win = EnergyWindow(self)
        win.t_begin_s, win.t_end_s = t_begin_s, t_end_s
        for i, rw in enumerate(win._per_reader):
            rw.samples = self._window_samples(i, t_begin_s, t_end_s)
            if self.readers[i].has_energy_counter:
                near_s = self.coverage.max_gap_s(self.interval_s(i))
                rw.energy_begin_j = _counter_at(rw.samples, t_begin_s, near_s)
                rw.energy_end_j = _counter_at(rw.samples, t_end_s, near_s)
                if rw.energy_begin_j is None or rw.energy_end_j is None:
                    rw.begin_note = f"no counter readings within {near_s:.3g} s on both sides of an edge"
            else:
                rw.begin_note = "reader has no energy counter"
            rw.result = self._compute(i, win, rw)
        return win

    def trace_rows(self, win: EnergyWindow, reader_index: int | None = None) -> list[dict[str, Any]]:
        """Same as ``win.trace_rows()`` (rows with ``t_s`` relative to the window's begin)."""
        return win.trace_rows(reader_index)

    def telemetry(self, win: EnergyWindow, reader_index: int = 0) -> dict[str, Any]:
        """Telemetry summary of an ended window (median SM clock, max temperature, power limit)."""
        return dict(win.results[reader_index].telemetry)

    @contextlib.contextmanager
    def window(self) -> Iterator[EnergyWindow]:
        """``with sampler.window() as win: ...`` -- ends the window on exit (``win.result``)."""
        win = self.begin_window()
        try:
            yield win
        finally:
            self.end_window_all(win)

    def _window_samples(self, i: int, t0: float, t1: float) -> list[PowerSample]:
        """Samples inside [t0, t1] plus the last one before t0 and the first one after t1."""
        with self._buf_lock:
            allp = sorted(self._samples[i], key=lambda s: s.t_s)
        inside = [s for s in allp if t0 <= s.t_s <= t1]
        before = [s for s in allp if s.t_s < t0][-1:]
        after = [s for s in allp if s.t_s > t1][:1]
        return before + inside + after

    def _compute(self, i: int, win: EnergyWindow, rw: _ReaderWindow) -> WindowEnergy:
        reader = self.readers[i]
        t0, t1 = win.t_begin_s, win.t_end_s
        assert t1 is not None
        window_s = t1 - t0
        inside = [s for s in rw.samples if t0 <= s.t_s <= t1]
        n_inside = len(inside)
        notes: list[str] = []

        energy_j: float | None = None
        method = "none"
        source = "none"
        coverage: dict[str, Any] | None = None
        e0, e1 = rw.energy_begin_j, rw.energy_end_j
        if e0 is not None and e1 is not None and e1 > e0:
            energy_j, method = e1 - e0, "counter"
            source = getattr(reader, "energy_source", f"{reader.name}:counter")
            res_s = getattr(reader, "counter_update_s", None)
            if res_s and window_s < 10 * res_s:
                notes.append(f"window ({window_s:.3f} s) is short against the counter's ~{res_s} s update period")
        else:
            if e0 is not None and e1 is not None:
                why = "counter did not advance" if e1 == e0 else f"counter went backwards ({e0} -> {e1} J)"
            else:
                why = rw.begin_note or rw.end_note or "no energy counter"
            polled_j, pnote = integrate_power(rw.samples, t0, t1)
            cov = None
            if polled_j is not None:
                errors = rw.edge_errors + self._errors_between(i, t0, t1)
                cov = judge(rw.samples, t0, t1, self.interval_s(i), errors, self.coverage)
                coverage = cov.to_dict()
            if cov is not None and cov.ok:
                energy_j, method = polled_j, "polled"
                source = getattr(reader, "power_source", f"{reader.name}:power")
                notes.append(f"{why}; integrated the polled power trace ({n_inside} samples inside)")
                if pnote:
                    notes.append(pnote)
            elif cov is not None:
                notes.append(f"{why}; polled power not usable: {cov.reason}: energy not measured")
            else:
                notes.append(f"{why}; {pnote}: energy not measured")
        if getattr(reader, "reason", None):
            notes.insert(0, f"not measured: {reader.reason}")  # type: ignore[attr-defined]
        if self._errors[i]:
            notes.append(f"{self._errors[i]} sample read errors so far (last: {self._last_error[i]})")

        # throttle and telemetry: the samples inside the window plus the two edge polls
        edge = rw.samples
        reasons: list[str] = []
        for s in edge:
            for name in reader.decode_throttle(s.throttle_reasons):
                if name not in reasons:
                    reasons.append(name)
        return WindowEnergy(
            scope=reader.scope,
            method=method,  # type: ignore[arg-type]
            source=source,
            window_s=window_s,
            energy_j=energy_j,
            power_w=(energy_j / window_s) if (energy_j is not None and window_s > 0) else None,
            n_samples=n_inside,
            sample_hz=(n_inside / window_s) if window_s > 0 else None,
            throttled=bool(reasons),
            throttle_reasons=reasons,
            note="; ".join(notes) or None,
            telemetry=_telemetry(edge) | ({"coverage": coverage} if coverage is not None else {}),
        )


def _counter_at(samples: Sequence[PowerSample], t: float, near_s: float = math.inf) -> float | None:
    """The energy counter at ``t``, linear between the counter samples just before and after it;
    None unless both lie within ``near_s`` of ``t`` (a counter read long ago says nothing of ``t``)."""
    pts = [s for s in samples if s.energy_j is not None]
    before = [s for s in pts if s.t_s <= t][-1:]
    after = [s for s in pts if s.t_s >= t][:1]
    if not before or not after or t - before[0].t_s > near_s or after[0].t_s - t > near_s:
        return None
    a, b = before[0], after[0]
    if b.t_s == a.t_s:
        return float(a.energy_j)  # type: ignore[arg-type]
    return float(a.energy_j) + (float(b.energy_j) - float(a.energy_j)) * (t - a.t_s) / (b.t_s - a.t_s)  # type: ignore[arg-type]


def _telemetry(samples: Sequence[PowerSample]) -> dict[str, Any]:
    """Median clocks and power, max temperature and power, power limit (last, min) over samples."""

    def vals(attr: str) -> list[float]:
        return [float(v) for s in samples if (v := getattr(s, attr)) is not None]

    sm, mem, temp, pw, lim = (vals(a) for a in ("sm_clock_mhz", "mem_clock_mhz", "temperature_c", "power_w", "power_limit_w"))
    return {
        "sm_clock_mhz_median": statistics.median(sm) if sm else None,
        "mem_clock_mhz_median": statistics.median(mem) if mem else None,
        "temperature_c_max": max(temp) if temp else None,
        "power_w_median": statistics.median(pw) if pw else None,
        "power_w_max": max(pw) if pw else None,
        "power_limit_w": lim[-1] if lim else None,
        "power_limit_w_min": min(lim) if lim else None,
    }


@contextlib.contextmanager
def measure_window(reader: PowerReader, sampler: Sampler | None = None) -> Iterator[EnergyWindow]:
    """Bracket a block: ``with measure_window(reader) as win: ...`` then ``win.result_for(reader)``.

    With ``sampler`` given (it must poll ``reader``), its window is used; otherwise a sampler on
    ``reader`` alone is started for the block and stopped after it.
    """
    own = sampler is None
    if sampler is None:
        sampler = Sampler(reader).start()
    elif reader not in sampler.readers:
        raise ValueError("the sampler does not poll this reader")
    try:
        with sampler.window() as win:
            yield win
    finally:
        if own:
            sampler.stop()
