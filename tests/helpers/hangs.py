"""A bound on runaway test cases (fuzzers, hostile inputs): fail instead of hanging the suite."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def hang_guard(seconds: int = 120) -> Iterator[None]:
    """Fail (rather than hang the suite) when a case runs away; generous, so never a speed test.
    Uses SIGALRM: main thread only, and not nested (the inner guard's alarm replaces the outer's)."""

    def boom(*_: Any) -> None:
        raise TimeoutError(f"ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
