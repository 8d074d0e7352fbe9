"""Two CPU "devices"; device 1 fails inside its first core phase, after the common start."""

import os
import sys

from icb_bench.bench import runner
from icb_bench.kernels.backends.cpu import CpuBackend
from icb_bench.kernels.errors import DeviceError

# a short common-start timeout, so a regression shows as a slow test rather than a 15-minute hang
runner.BARRIER_TIMEOUT_S = float(os.environ.get("FAKE_BARRIER_TIMEOUT_S", "30"))
_failed: set[int] = set()


class LateFail(CpuBackend):
    name = "latefail"

    def device_count(self) -> int:
        return 2

    def synchronize(self, index: int) -> None:
        # the runner itself synchronizes right after the common start, before the window opens;
        # the GEMM workload's own synchronize calls come from other frames
        if index == 1 and not _failed and sys._getframe(1).f_code.co_name == "_measure_one":
            _failed.add(index)
            raise DeviceError("simulated failure inside the core phase")
        super().synchronize(index)


class HardExit(CpuBackend):
    """Device 1's worker dies without a Python exception (as under the OOM killer)."""

    name = "hardexit"

    def device_count(self) -> int:
        return 2

    def memory_info(self, index: int):
        import multiprocessing

        if index == 1 and multiprocessing.parent_process() is not None:  # in device 1's worker only
            os._exit(137)
        return super().memory_info(index)
