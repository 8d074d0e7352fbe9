"""Two CPU "devices"; on device $FAKE_DISKFULL_DEVICE (default 1) the record's disk is full: every
measurement file that worker writes fails with ENOSPC, as on a full filesystem (other files, and
the other device's, are written as usual). Set it to -1 for a disk with room again."""

import errno
import os

from icb_bench.bench import record
from icb_bench.kernels.backends.cpu import CpuBackend


class DiskFull(CpuBackend):
    name = "diskfull"

    def device_count(self) -> int:
        return 2

    def configure_worker(self, index: int, count: int) -> None:
        super().configure_worker(index, count)
        if index != int(os.environ.get("FAKE_DISKFULL_DEVICE", "1")):
            return
        real = record._atomic_write

        def full(path, data):
            if path.parent.name == record.MEASUREMENTS_DIR:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(path, data)

        record._atomic_write = full
