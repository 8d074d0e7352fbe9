"""The shape search: which of the candidate shapes runs fastest (and correctly) on a device."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any, Callable

from .errors import DeviceError, OutOfMemory
from .shapes import GemmShape

if TYPE_CHECKING:
    from .backends.base import Backend


def search_best_shape(
    backend: "Backend",
    index: int,
    dtype: str,
    shapes: list[GemmShape],
    seed: int,
    *,
    batch_ms: float = 50.0,
    batches: int = 3,
    passes: int = 2,
    on_candidate: Callable[[int, int], None] | None = None,
) -> tuple[GemmShape, list[dict[str, Any]]]:
    """Try each shape briefly (median of ``batches`` batches of ~``batch_ms``) in ``passes``
    passes, the second in reverse order: a card that heats up and throttles during the search
    would otherwise favour whichever shape ran first. A shape's score is the mean of its pass
    medians. Returns the fastest valid shape and one record per shape ({m, n, k, tflops,
    tflops_passes} plus "error" where it failed). Shapes that run out of memory are skipped (and
    not retried); DeviceError if none works. ``on_candidate(done, total)`` runs before the first
    and after each of the ``passes × len(shapes)`` tries (a skipped one counts as done), for a
    progress display."""
    from .gemm import GemmWorkload  # here, not at the top: gemm re-exports this function

    if not shapes:
        raise ValueError("no candidate shapes to search (not enough free memory?)")
    records: dict[GemmShape, dict[str, Any]] = {
        shape: {**shape.as_dict(), "tflops": None, "tflops_passes": []} for shape in shapes
    }
    total_tries, done_tries = max(1, passes) * len(shapes), 0
    if on_candidate is not None:
        on_candidate(0, total_tries)
    for p in range(max(1, passes)):
        for shape in (shapes if p % 2 == 0 else list(reversed(shapes))):
            done_tries += 1
            record = records[shape]
            if "error" in record:
                if on_candidate is not None:
                    on_candidate(done_tries, total_tries)
                continue
            out_of_memory = False
            try:
                with GemmWorkload(backend, index, dtype, shape, seed) as wl:
                    wl.warmup(iters=2)
                    iters = wl.calibrate(batch_ms)
                    run = wl.run_timed(iters, n_batches=batches)
                    check = wl.check()
                    record["method"] = run.method
                    if check.valid:
                        record["tflops_passes"].append(run.tflops_median)
                    else:
                        record["error"] = f"incorrect result: {check.reason}"
            except OutOfMemory as exc:
                record["error"] = str(exc)
                out_of_memory = True
            if out_of_memory:
                # only now: inside the except block the traceback still pins the tensors
                gc.collect()
                backend.empty_cache(index)
            if on_candidate is not None:
                on_candidate(done_tries, total_tries)
    best: tuple[float, GemmShape] | None = None
    for shape, record in records.items():
        if "error" in record or not record["tflops_passes"]:
            record["tflops_passes"] = record["tflops_passes"] or None
            continue
        record["tflops"] = sum(record["tflops_passes"]) / len(record["tflops_passes"])
        if best is None or record["tflops"] > best[0]:
            best = (record["tflops"], shape)
    results = list(records.values())
    if best is None:
        raise DeviceError(
            f"no candidate shape ran for {dtype}: "
            + "; ".join(f"{r['m']}x{r['n']}x{r['k']}: {r.get('error')}" for r in results)
        )
    return best[1], results


__all__ = ["search_best_shape"]
