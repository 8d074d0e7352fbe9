"""An out-of-tree backend for tests (added through $ICB_BENCH_BACKENDS): two CPU "devices", the
second of which is lost as soon as it is touched."""

from icb_bench.kernels.backends.cpu import CpuBackend
from icb_bench.kernels.errors import DeviceError


class FlakyBackend(CpuBackend):
    name = "flaky"

    def device_count(self) -> int:
        return 2

    def device_info(self, index: int):
        if index == 1:
            raise DeviceError("simulated device loss on device 1")
        return super().device_info(index)
