"""The kernels' own error types: vendor and torch errors are translated into these at the boundary."""


class KernelError(Exception):
    """Base class of every error raised by icb_bench.kernels."""


class BackendUnavailable(KernelError):
    """The backend's runtime or device plugin is not installed, or it sees no device."""


class UnsupportedDtype(KernelError):
    """The device (or this build of its software) cannot run a GEMM in the requested dtype."""


class DeviceError(KernelError):
    """A device failed while running work (out of memory, lost device, runtime error)."""


class OutOfMemory(DeviceError):
    """The device ran out of memory (a shape search skips the shape and goes on)."""
