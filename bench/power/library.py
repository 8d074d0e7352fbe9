"""A vendor management library (NVML, amdsmi, …) shared by every reader in one process.

The library is imported and initialised by the first reader that opens and shut down when the
last one closes: several devices' readers in one process must not shut it down under each other.
"""

from __future__ import annotations

import threading
from typing import Any, Callable


class SharedLibrary:
    """Reference-counted ``init``/``shutdown`` around a lazily imported module.

    ``load()`` imports the module (raising :class:`PowerError` with an install hint), ``init(mod)``
    initialises it (raising :class:`PowerError`), ``shutdown(mod)`` releases it; errors raised by
    ``shutdown`` are the library's own business at that point and are ignored.
    """

    def __init__(self, load: Callable[[], Any], init: Callable[[Any], None], shutdown: Callable[[Any], None]):
        self._load, self._init, self._shutdown = load, init, shutdown
        self._lock = threading.Lock()
        self._refs = 0
        self._mod: Any = None  # the module init() was called on

    @property
    def refs(self) -> int:
        """Open references in this process (for tests and diagnostics)."""
        return self._refs

    def acquire(self) -> Any:
        """The initialised module; the first call imports and initialises it."""
        mod = self._load()
        with self._lock:
            if self._refs == 0:
                self._init(mod)
                self._mod = mod
            self._refs += 1
            return self._mod

    def release(self) -> None:
        """Drop one reference; shut the library down with the last one."""
        with self._lock:
            if self._refs <= 0:
                return
            self._refs -= 1
            if self._refs == 0 and self._mod is not None:
                mod, self._mod = self._mod, None
                try:
                    self._shutdown(mod)
                except Exception:  # noqa: BLE001 - shutting down: nothing useful to do with the error
                    pass


__all__ = ["SharedLibrary"]
