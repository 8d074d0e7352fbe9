"""Two CPU "devices"; the worker of device $FAKE_KILLED_DEVICE (default 1) ends abruptly at the
start of its second dtype, after its first measurement is on disk. $FAKE_KILLED_MODE says how:

``blocked``  the parent is held (this module, imported in the parent too, holds its handling of that
             worker's second "starting" event) so it does not read; a second thread of the worker
             sends a message sixteen times the pipe's size and is blocked inside that send when the
             worker SIGKILLs itself (as under the OOM killer, mid-message). $FAKE_KILLED_MARK: a file
             the worker creates just before the kill, which lets the parent read again.
``lastwords`` the worker reports its own failure and leaves at once (``os._exit``, no clean-up): its
             last message, sent just before it exits, must still reach the parent.

If the worker finds its sending thread not blocked (the arrangement failed), it exits with
:data:`NOT_BLOCKED_EXIT` instead, so a test sees that the case it meant was not exercised.
"""

import fcntl
import multiprocessing
import os
import signal
import struct
import termios
import threading
import time
from pathlib import Path

from icb_bench.bench import orchestrate, runner
from icb_bench.kernels.backends.cpu import CpuBackend

NOT_BLOCKED_EXIT = 99
LAST_WORDS = "simulated failure, reported just before the worker exited"
#: how long either side waits for the other before giving up (a regression fails, it does not hang)
HOLD_S = 120.0
#: the large message's size, in pipe sizes: far more than the parent could take in while held
LARGE_PIPES = 16

_DEVICE = int(os.environ.get("FAKE_KILLED_DEVICE", "1"))
_MODE = os.environ.get("FAKE_KILLED_MODE", "blocked")
_MARK = os.environ.get("FAKE_KILLED_MARK", "")


def _pipe_fill(fd: int) -> tuple[int, int]:
    """(bytes waiting in the pipe, the pipe's size)."""
    waiting = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    return waiting, fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)


def _blocked_in_write(thread: threading.Thread, fd: int) -> bool:
    """The thread sleeps inside a pipe write (its kernel wait channel says so, or, where that is
    hidden, the pipe holds more than half its size while the thread has not finished)."""
    wchan = Path(f"/proc/self/task/{thread.native_id}/wchan")
    try:
        if "pipe_write" in wchan.read_text():
            return True
    except OSError:
        pass
    waiting, size = _pipe_fill(fd)
    return thread.is_alive() and waiting >= size // 2


def _worker_conn(frame) -> object:
    """The worker's send end, from ``orchestrate._worker``'s frame (a test reaching into the worker)."""
    while frame is not None and frame.f_code.co_name != "_worker":
        frame = frame.f_back
    assert frame is not None, "not in an orchestrate worker"
    return frame.f_locals["conn"]


def _kill_while_sending(emit, index: int) -> None:
    import sys

    conn = _worker_conn(sys._getframe())
    size = _pipe_fill(conn.fileno())[1]
    sender = threading.Thread(target=emit, args=("warning",),
                              kwargs={"device": index, "message": "x" * (LARGE_PIPES * size)}, daemon=True)
    sender.start()
    deadline = time.monotonic() + HOLD_S
    while not _blocked_in_write(sender, conn.fileno()):
        if not sender.is_alive() or time.monotonic() > deadline:
            os._exit(NOT_BLOCKED_EXIT)  # the parent was reading: the case meant was not arranged
        time.sleep(0.01)
    Path(_MARK).touch()
    os.kill(os.getpid(), signal.SIGKILL)


def _install_in_worker() -> None:
    real = runner._Arrival.wait
    seen: list[object] = []

    def wait(self, barrier, emit=None, index=None, point=runner.SYNC_POINTS[0]):
        if self not in seen:
            seen.append(self)
        if len(seen) == 2 and emit is not None:  # the second dtype's first common start
            if _MODE == "lastwords":
                emit("device_failed", device=index, error=LAST_WORDS)
                os._exit(1)
            _kill_while_sending(emit, index)
        return real(self, barrier, emit, index, point)

    runner._Arrival.wait = wait


def _install_in_parent() -> None:
    """Hold the parent's handling of the doomed worker's second "starting" event (so it reads no
    pipe) until that worker is about to be killed."""
    real = orchestrate.RunLog.event
    starts: list[str] = []

    def event(self, kind, data):
        if kind == "phase" and data.get("device") == _DEVICE and data.get("phase") == "starting":
            starts.append(data.get("dtype"))
            deadline = time.monotonic() + HOLD_S
            while len(starts) == 2 and not Path(_MARK).exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return real(self, kind, data)

    orchestrate.RunLog.event = event


if _MODE == "blocked" and _MARK and multiprocessing.parent_process() is None:
    _install_in_parent()


class KilledWorker(CpuBackend):
    name = "killed"

    def device_count(self) -> int:
        return 2

    def configure_worker(self, index: int, count: int) -> None:
        super().configure_worker(index, count)
        if index == _DEVICE and multiprocessing.parent_process() is not None:
            _install_in_worker()
