"""The GEMM workload: seeded random inputs on a device, timed back-to-back batches, the
correctness checks (sampled FP64 elements and Freivalds over every element) and a numeric-mode
probe. Shapes live in :mod:`.shapes`, inputs in :mod:`.inputs`, checking in :mod:`.check` and
:mod:`.freivalds`, batch-size calibration in :mod:`.calibrate` and a timed run's statistics in
:mod:`.timed_run`; the names are re-exported here.

Typical use (what ``bench/`` does)::

    with GemmWorkload(backend, 0, "fp16", GemmShape(8192, 8192, 8192), seed=1) as wl:
        assert wl.mode_probe().passed
        wl.warmup(iters=10)
        iters = wl.calibrate(target_batch_ms=100)
        run = wl.run_timed(iters, duration_s=120)      # poisons C first
        result = wl.check()                            # every sampled element overwritten & right
        full = wl.freivalds(seed=2)                    # every element, on the device
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from . import inputs
from .calibrate import MAX_ITERS_PER_BATCH, Calibration, CalibrationPolicy, calibrate_iters
from .check import INT32_POISON, CorrectnessResult, DegenerateInputs, InputHealth, compare_samples, inspect_inputs
from .dtypes import DTYPES, GemmDtype, get_dtype
from .errors import KernelError, OutOfMemory, UnsupportedDtype
from .freivalds import FreivaldsResult, freivalds_check
from .shapes import FULL_SIZES, QUICK_SIZES, GemmShape, candidate_shapes, shape_bytes
from .timed_run import TimedRun

if TYPE_CHECKING:
    import torch

    from .backends.base import Backend

#: host-side random-number chunk, so generating 16384² inputs never needs a 1 GiB temporary
_GEN_CHUNK_ELEMENTS = 1 << 24
#: offset mixed into the seed for the correctness check's sample positions
_SAMPLE_SEED_OFFSET = 1_000_003
#: TF32 probe value: exact in FP32 (20 mantissa bits); TF32 (10 bits) rounds it to 1 + 2^-10;
#: bf16 and bf16x3 ("medium" precision) also lose the 2^-20 term
PROBE_VALUE = 1.0 + 2.0**-10 + 2.0**-20
PROBE_TF32_VALUE = 1.0 + 2.0**-10
#: where a workload's inputs come from: the device's own generator (fast; shape search), or
#: host-generated seeded rows an auditor can regenerate (:mod:`.inputs`; measured workloads)
INPUT_SOURCES = ("device", "host-rows")


@dataclass
class ModeProbe:
    """Whether the numeric mode really is what the dtype says (FP32 is IEEE, TF32 is TF32)."""

    passed: bool
    detail: str
    flags: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class GemmWorkload:
    """One GEMM of one dtype and shape on one device, with seeded random inputs.

    ``inputs``: ``"device"`` draws them with the device's own generator (fast: the shape
    search); ``"host-rows"`` draws seeded row blocks on the host (:mod:`.inputs`), which an
    auditor regenerates on a CPU. Either way degenerate inputs raise :class:`DegenerateInputs`."""

    def __init__(
        self,
        backend: "Backend",
        index: int,
        dtype: str,
        shape: GemmShape,
        seed: int = 0,
        *,
        use_graphs: bool = True,
        inputs: str = "device",
    ) -> None:
        if inputs not in INPUT_SOURCES:
            raise ValueError(f"inputs must be one of {INPUT_SOURCES}, got {inputs!r}")
        self.backend = backend
        self.inputs = inputs
        self.index = index
        self.spec: GemmDtype = get_dtype(dtype)
        self.dtype = self.spec.name
        self.shape = shape
        self.seed = int(seed)
        self.use_graphs = use_graphs and backend.supports_graphs
        self.graph_error: str | None = None
        self.input_source = ""  # "device-generator" | "host-generator" | inputs.GENERATOR
        self.input_health: InputHealth | None = None
        self.flags: dict[str, Any] = {}
        self._graph_replay: Callable[[], Any] | None = None
        self._graph_iters = 0
        self.ms_per_gemm: float | None = None
        self.calibration: Calibration | None = None
        self.device = backend.device(index)
        with self._guard(), self._mode():
            import torch

            m, n, k = shape.m, shape.n, shape.k
            in_dtype, out_dtype = self.spec.torch_dtype("inputs"), self.spec.torch_dtype("output")
            self.a: torch.Tensor = torch.empty((m, k), dtype=in_dtype, device=self.device)
            if self.spec.b_col_major:
                self.b: torch.Tensor = torch.empty((n, k), dtype=in_dtype, device=self.device).t()
            else:
                self.b = torch.empty((k, n), dtype=in_dtype, device=self.device)
            self.c: torch.Tensor = torch.empty((m, n), dtype=out_dtype, device=self.device)
            self._fill_inputs()
            self._mm: Callable[[], Any] = self._make_mm()
            self.backend.synchronize(index)

    # -- plumbing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Translate torch/vendor errors into kernels errors at this boundary."""
        try:
            yield
        except KernelError:
            raise
        except NotImplementedError as exc:
            raise UnsupportedDtype(f"{self.backend.name}: {self.spec.name}: {exc}") from exc
        except (RuntimeError, MemoryError) as exc:
            err = self.backend.translate_error(exc)
            if isinstance(err, OutOfMemory):
                # drop our tensors so the caller can go on with a smaller shape
                self.close()
            raise err from exc

    @contextlib.contextmanager
    def _mode(self) -> Iterator[dict[str, Any]]:
        """Current device + the dtype's numeric flags (recorded in ``self.flags``)."""
        with self.backend.device_context(self.index), self.backend.numeric_mode(self.dtype) as flags:
            self.flags = dict(flags)
            yield flags

    @property
    def flops_per_gemm(self) -> int:
        return self.shape.flops

    def _graph_state(self) -> str:
        if self._graph_replay is not None:
            return "captured"
        if self.graph_error:
            return "capture failed"
        if self.use_graphs:
            return "not captured yet"
        return "off" if self.backend.supports_graphs else "unsupported"

    def describe(self) -> dict[str, Any]:
        """Provenance of this workload for a record: dtype, shape, inputs, timing path."""
        return {
            "dtype": self.spec.as_dict(),
            "shape": self.shape.as_dict(),
            "flops_per_gemm": self.flops_per_gemm,
            "seed": self.seed,
            "input_source": self.input_source,
            "input_distribution": inputs.describe(self.spec, self.shape.k),
            "input_health": self.input_health.as_dict() if self.input_health else None,
            "b_layout": "column-major" if self.spec.b_col_major else "row-major",
            "graphs": self._graph_state(),
            "graph_error": self.graph_error,
        }

    def _fill_inputs(self) -> None:
        """Seeded random A and B (see the class docstring), then refused if degenerate: zeros
        run faster and draw less power, and low-rank products are cheap to fake."""
        self._draw_inputs()
        self.input_health = inspect_inputs(self.a, self.b, self.seed)
        if not self.input_health.ok:
            raise DegenerateInputs(f"{self.dtype} {self.shape}: degenerate inputs refused before the run: "
                                   f"{self.input_health.reason}")

    def _draw_inputs(self) -> None:
        import torch

        if self.inputs == "host-rows":
            self.input_source = inputs.GENERATOR
            for name, dst in inputs.row_operands(self.a, self.b).items():
                inputs.fill(dst, self.spec, self.shape.k, self.seed, name)
            return
        gen = self.backend.generator(self.index, self.seed)
        if gen is None:
            gen = torch.Generator(device="cpu")
            gen.manual_seed(self.seed)
            self.input_source = "host-generator"
        else:
            self.input_source = "device-generator"
        gen_device = gen.device
        # B is filled through its storage layout, so column-major B draws its (n, k) transpose
        b_storage = self.b.t() if self.spec.b_col_major else self.b
        for dst in (self.a, b_storage):
            self._fill_random(dst, gen, gen_device)

    def _fill_random(self, dst: "torch.Tensor", gen: "torch.Generator", gen_device: Any) -> None:
        import torch

        rows, cols = dst.shape
        chunk_rows = max(1, min(rows, _GEN_CHUNK_ELEMENTS // max(1, cols)))
        if self.spec.op == "int_mm":
            draw = lambda r: torch.randint(inputs.INT_LOW, inputs.INT_HIGH, (r, cols), generator=gen,  # noqa: E731
                                           device=gen_device, dtype=torch.int8)
        else:
            scale = inputs.scale_for(self.spec, self.shape.k)
            gen_dtype = dst.dtype if dst.dtype in (torch.float16, torch.bfloat16, torch.float32) else torch.float32
            draw = lambda r: torch.randn((r, cols), generator=gen, device=gen_device, dtype=gen_dtype).mul_(scale)  # noqa: E731
        for start in range(0, rows, chunk_rows):
            stop = min(rows, start + chunk_rows)
            dst[start:stop].copy_(draw(stop - start))

    def _make_mm(self) -> Callable[[], Any]:
        """One GEMM into C, no allocation (out=), so it can be captured into a graph."""
        import torch

        a, b, c = self.a, self.b, self.c
        if self.spec.op == "mm":
            return lambda: torch.mm(a, b, out=c)
        if self.spec.op == "int_mm":
            return lambda: torch._int_mm(a, b, out=c)
        if self.spec.op == "scaled_mm":
            one_a = torch.ones((), dtype=torch.float32, device=self.device)
            one_b = torch.ones((), dtype=torch.float32, device=self.device)
            return lambda: torch._scaled_mm(
                a, b, scale_a=one_a, scale_b=one_b, out_dtype=c.dtype, use_fast_accum=False, out=c
            )
        raise UnsupportedDtype(f"unknown GEMM op {self.spec.op!r}")

    def _eager_batch(self, iters: int) -> Callable[[], None]:
        def run() -> None:
            mm = self._mm
            for _ in range(iters):
                mm()

        return run

    def _batch_fn(self, iters: int) -> tuple[Callable[[], None], bool]:
        """(function enqueuing ``iters`` GEMMs, whether it is a graph replay). Captures a graph
        once per ``iters`` where the backend supports it; falls back to eager on failure."""
        if self.use_graphs:
            if self._graph_replay is None or self._graph_iters != iters:
                self._graph_replay = None
                try:
                    self._graph_replay = self.backend.capture_graph(self.index, self._eager_batch(iters))
                    self._graph_iters = iters
                except KernelError as exc:
                    self.graph_error = str(exc)
                    self.use_graphs = False  # do not retry a capture that failed once
            if self._graph_replay is not None:
                return self._graph_replay, True
        return self._eager_batch(iters), False

    # -- public API ---------------------------------------------------------------------

    def poison(self) -> None:
        """Fill C with a value no GEMM writes (NaN; INT32_MIN for int32) so the check can tell
        elements the run never wrote."""
        with self._guard(), self._mode():
            self.c.fill_(INT32_POISON if self.spec.exact else float("nan"))

    def warmup(self, iters: int = 3, *, min_time_s: float = 0.0) -> None:
        """Run ``iters`` eager GEMMs (and keep going until ``min_time_s`` has passed), then sync."""
        iters = max(1, iters)
        with self._guard(), self._mode():
            start = time.perf_counter()
            while True:
                self._eager_batch(iters)()
                self.backend.synchronize(self.index)  # host clock below must see finished work
                if time.perf_counter() - start >= min_time_s:
                    break

    def warmup_for(self, warmup_ms: float) -> None:
        """Warm up for at least ``warmup_ms`` of wall time (clocks ramp, caches and BLAS
        heuristics settle); at least one GEMM."""
        self.warmup(iters=1, min_time_s=max(0.0, warmup_ms) / 1e3)

    def calibrate(self, target_batch_ms: float, policy: CalibrationPolicy | None = None) -> int:
        """GEMMs per batch so one batch takes about ``target_batch_ms`` (at least 1), from the
        median of several timed batches (see :func:`calibrate_iters`); the details are kept in
        ``self.calibration``."""
        if target_batch_ms <= 0:
            raise ValueError("target_batch_ms must be positive")
        with self._guard(), self._mode():
            self._mm()  # first call may carry lazy initialisation
            self.backend.synchronize(self.index)
            self.calibration = calibrate_iters(self._time_eager, target_batch_ms, policy)
        self.ms_per_gemm = self.calibration.ms_per_gemm
        return self.calibration.iters

    def _time_eager(self, iters: int) -> float:
        timer = self.backend.timer(self.index)
        timer.start()
        self._eager_batch(iters)()
        timer.stop()
        return timer.elapsed_ms()

    def run_timed(
        self,
        iters_per_batch: int,
        *,
        n_batches: int | None = None,
        duration_s: float | None = None,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> TimedRun:
        """Time back-to-back batches (exactly one of ``n_batches`` / ``duration_s``).

        C is poisoned first. Batch i+1 is enqueued before the host waits on batch i's stop
        marker, so host-side reads never leave the device idle. Duration mode keeps enqueuing
        until ``duration_s`` of wall time has passed. ``on_batch(i, time_ms)`` runs as each
        batch's time is read; keep it cheap."""
        if (n_batches is None) == (duration_s is None):
            raise ValueError("give exactly one of n_batches or duration_s")
        if n_batches is not None and n_batches < 1:
            raise ValueError("n_batches must be at least 1")
        if iters_per_batch < 1:
            raise ValueError("iters_per_batch must be at least 1")
        with self._guard(), self._mode() as flags:
            batch, graphed = self._batch_fn(iters_per_batch)
            self.poison()
            self.backend.synchronize(self.index)
            times_ms: list[float] = []
            done_s: list[float] = []
            pending: deque[Any] = deque()
            timer_method = "wall"
            start_unix = time.time()
            t0 = time.perf_counter()

            def enqueue() -> None:
                nonlocal timer_method
                timer = self.backend.timer(self.index)
                timer_method = timer.method
                timer.start()
                batch()
                timer.stop()
                pending.append(timer)

            def want_more() -> bool:
                enqueued = len(times_ms) + len(pending)
                if n_batches is not None:
                    return enqueued < n_batches
                return time.perf_counter() - t0 < duration_s  # type: ignore[operator]

            enqueue()
            while pending:
                if len(pending) < 2 and want_more():
                    enqueue()  # keep one batch queued behind the one we wait on
                elapsed = pending.popleft().elapsed_ms()
                times_ms.append(elapsed)
                done_s.append(time.perf_counter() - t0)
                if on_batch is not None:
                    on_batch(len(times_ms) - 1, elapsed)
            self.backend.synchronize(self.index)
            wall_s = time.perf_counter() - t0
        if timer_method == "events":
            method = "graph-replay+events" if graphed else "events"
        else:
            method = "wall"
        return TimedRun(
            batch_time_ms=times_ms,
            iters_per_batch=iters_per_batch,
            wall_s=wall_s,
            method=method,
            total_gemms=iters_per_batch * len(times_ms),
            flops_per_gemm=self.flops_per_gemm,
            batch_done_s=done_s,
            start_unix_s=start_unix,
            graph_error=self.graph_error,
            flags=dict(flags),
        )

    def sample_positions(self, samples: int = 256) -> tuple["torch.Tensor", "torch.Tensor"]:
        """(rows, cols) of the elements :meth:`check` compares, from a seeded host generator;
        the first two are the corners (0, 0) and (m-1, n-1), where tail tiles go wrong."""
        import torch

        gen = torch.Generator(device="cpu")
        gen.manual_seed(self.seed + _SAMPLE_SEED_OFFSET)
        rows = torch.randint(0, self.shape.m, (samples,), generator=gen)
        cols = torch.randint(0, self.shape.n, (samples,), generator=gen)
        if samples >= 2:
            rows[0], cols[0] = 0, 0
            rows[1], cols[1] = self.shape.m - 1, self.shape.n - 1
        return rows, cols

    def _rows_to_host(self, mat: "torch.Tensor", idx: "torch.Tensor") -> "torch.Tensor":
        """mat[idx, :] copied to the host as float64 (only the sampled rows move)."""
        import torch

        dev_idx = idx.to(self.device)
        if mat.element_size() == 1 and mat.is_floating_point():
            # gather fp8 as bytes: index kernels for float8 are not on every device
            raw = mat.view(torch.uint8)[dev_idx].cpu()
            return raw.view(mat.dtype).to(torch.float64)
        return mat[dev_idx].cpu().to(torch.float64)

    def check(self, samples: int = 256) -> CorrectnessResult:
        """Compare ``samples`` elements of C with an FP64 host reference computed from the
        device's actual inputs. Error metric: |out - ref| / (‖A[i,:]‖·‖B[:,j]‖/√k), i.e. relative
        to the RMS size of an output element — a wrong value (0, a neighbour's) scores ~1 at any
        k. (The plain Cauchy–Schwarz ratio ‖A‖‖B‖ shrinks wrong values by √k: at k = 16384 a zero
        scores ~0.008 and would pass a bf16 tolerance; it is reported as ``max_err_cs``.)"""
        import torch

        rows, cols = self.sample_positions(samples)
        with self._guard(), self._mode():
            self.backend.synchronize(self.index)
            out = self._gather_outputs(rows, cols)
            urows, inv_r = torch.unique(rows, return_inverse=True)
            ucols, inv_c = torch.unique(cols, return_inverse=True)
            a_rows = self._rows_to_host(self.a, urows)
            b_cols = self._rows_to_host(self.b.t(), ucols)  # columns of B as rows of Bᵀ
        return compare_samples(out, a_rows[inv_r], b_cols[inv_c], self.spec, self.shape.k, (rows, cols))

    def _gather_outputs(self, rows: "torch.Tensor", cols: "torch.Tensor") -> "torch.Tensor":
        return self.c[rows.to(self.device), cols.to(self.device)].cpu()

    def output_values(self, rows: list[int], cols: list[int]) -> list[float] | list[int]:
        """C[rows[s], cols[s]] as exact Python numbers (ints for int32 outputs; float64 holds every
        fp16/bf16/fp32 value exactly), for a record's output samples."""
        import torch

        with self._guard(), self._mode():
            self.backend.synchronize(self.index)
            out = self._gather_outputs(torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long))
        return out.to(torch.int64).tolist() if self.spec.exact else out.to(torch.float64).tolist()

    def freivalds(self, seed: int) -> FreivaldsResult:
        """Check every element of C (see :mod:`.freivalds`) with random vectors drawn from
        ``seed``, on the device, FP32 matmul precision forced (TF32 off) whatever the dtype."""
        with self._guard(), self.backend.device_context(self.index), self.backend.numeric_mode("fp32"):
            return freivalds_check(self.c, self.a, self.b, self.spec, seed,
                                   synchronize=lambda: self.backend.synchronize(self.index))

    def mode_probe(self, samples: int = 256) -> ModeProbe:
        """Check that the multiply precision is what the dtype says, at this workload's shape and
        through its own GEMM call (and its captured graph, if any) — so a switch that silently
        does nothing (FlagPerf's TF32 bug) is caught. A = 1 + 2^-10 + 2^-20 everywhere, B = I:
        IEEE FP32 returns A exactly, TF32 returns 1 + 2^-10. Other dtypes pass trivially.

        Overwrites C and, briefly, A and B (regenerated from the seed afterwards): run it
        before the timed run, or re-run :meth:`run_timed` before :meth:`check`."""
        if self.dtype not in ("fp32", "tf32"):
            with self._mode() as flags:
                return ModeProbe(True, f"no multiply-precision probe for {self.dtype}", dict(flags))
        import torch

        expected = PROBE_VALUE if self.dtype == "fp32" else PROBE_TF32_VALUE
        rows, cols = self.sample_positions(samples)
        diag = min(self.shape.k, self.shape.n)
        want = torch.where(cols < diag, torch.tensor(expected, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64))
        observed: list[tuple[str, torch.Tensor]] = []
        with self._guard(), self._mode() as flags:
            try:
                self.a.fill_(PROBE_VALUE)
                self.b.zero_()
                self.b.diagonal().fill_(1.0)
                self.poison()
                self._mm()
                self.backend.synchronize(self.index)
                observed.append(("eager", self.c[rows.to(self.device), cols.to(self.device)].cpu().double()))
                if self._graph_replay is not None:
                    self.poison()
                    self._graph_replay()
                    self.backend.synchronize(self.index)
                    observed.append(("graph", self.c[rows.to(self.device), cols.to(self.device)].cpu().double()))
            finally:
                self._fill_inputs()
                self.backend.synchronize(self.index)
        problems = []
        for path, got in observed:
            bad = got != want
            if bool(bad.any()):
                first = int(bad.nonzero()[0])
                value = float(got[first])
                if value == PROBE_TF32_VALUE:
                    what = "TF32-rounded (10-bit mantissa) multiply"
                elif value == 1.0:
                    what = "BF16-or-coarser multiply"
                elif value == PROBE_VALUE:
                    what = "full IEEE FP32 multiply (no TF32)"
                else:
                    what = "unexpected value"
                problems.append(
                    f"{path}: {int(bad.sum())}/{len(got)} elements wrong, e.g. {value!r} "
                    f"(expected {float(want[first])!r}): {what}"
                )
        mode = "IEEE FP32" if self.dtype == "fp32" else "TF32"
        if problems:
            return ModeProbe(False, f"{self.dtype} is not {mode}: " + "; ".join(problems), dict(flags))
        paths = "+".join(p for p, _ in observed)
        return ModeProbe(True, f"{mode} confirmed at {self.shape} ({paths})", dict(flags))

    def close(self) -> None:
        """Free device memory (tensors and any captured graph)."""
        self._graph_replay = None
        self._mm = lambda: None
        for name in ("a", "b", "c"):
            if hasattr(self, name):
                delattr(self, name)
        try:
            self.backend.empty_cache(self.index)
        except KernelError:
            pass

    def __enter__(self) -> "GemmWorkload":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


from .search import search_best_shape  # noqa: E402  (re-exported; search imports GemmWorkload lazily)


__all__ = [
    "DTYPES",
    "FULL_SIZES",
    "INT32_POISON",
    "MAX_ITERS_PER_BATCH",
    "QUICK_SIZES",
    "Calibration",
    "CalibrationPolicy",
    "CorrectnessResult",
    "DegenerateInputs",
    "FreivaldsResult",
    "GemmShape",
    "GemmWorkload",
    "ModeProbe",
    "TimedRun",
    "calibrate_iters",
    "candidate_shapes",
    "search_best_shape",
    "shape_bytes",
]
