"""A CPU backend for multi-node tests: ``FAKE_SLEEP_S`` (set on one node only) holds that node's
device back before its first measurement, as a node stuck in its shape search would be."""

import os
import time

from icb_bench.kernels.backends.cpu import CpuBackend


class Sleepy(CpuBackend):
    name = "sleepy"

    def configure_worker(self, index: int, count: int) -> None:
        time.sleep(float(os.environ.get("FAKE_SLEEP_S", "0")))
        super().configure_worker(index, count)
