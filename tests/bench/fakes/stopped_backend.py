"""Two CPU "devices"; the worker of device $FAKE_STOPPED_DEVICE (default 0) is stopped by a SIGTERM
sent to it alone, as by `kill <pid>` from outside the run, before it has said anything to the
parent (so no queue lock is held when it goes)."""

import os
import signal

from icb_bench.kernels.backends.cpu import CpuBackend


class StoppedWorker(CpuBackend):
    name = "stopped"

    def device_count(self) -> int:
        return 2

    def configure_worker(self, index: int, count: int) -> None:
        super().configure_worker(index, count)
        if index == int(os.environ.get("FAKE_STOPPED_DEVICE", "0")):
            os.kill(os.getpid(), signal.SIGTERM)
