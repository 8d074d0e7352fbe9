"""Reading an input file an operator names (a site file, a secret file, a meter log) safely.

Only a regular file is read (a FIFO would block forever, ``/dev/zero`` never ends, a directory
is not a file), and its size is checked before a byte is read; symbolic links are followed
(an operator's input may be one), but what they lead to must be a regular file too.
"""

from __future__ import annotations

import os
import stat

__all__ = ["MissingFile", "UnreadableFile", "read_regular_file"]


class UnreadableFile(Exception):
    """Why a file was not read, as what was expected (callers name the file and add context)."""


class MissingFile(UnreadableFile):
    """There is no file at the path."""


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _check(st: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise UnreadableFile(f"a regular file, not {kind}")
    if st.st_size > max_bytes:
        raise UnreadableFile(f"at most {_size(max_bytes)}, not {st.st_size:,} bytes")


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB" if n >= 2**10 else f"{n} bytes"


def read_regular_file(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``max_bytes``; :class:`MissingFile` or
    :class:`UnreadableFile` (its text: what was expected, e.g. "a regular file, not a FIFO") otherwise."""
    try:
        _check(os.stat(path), max_bytes)  # before the open: opening a device can have effects
        # O_NONBLOCK: a FIFO swapped in after the check cannot block the open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except ValueError:  # an embedded NUL character
        raise UnreadableFile("a file name without NUL characters") from None
    except FileNotFoundError:
        raise MissingFile("an existing file") from None
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from None
    with os.fdopen(fd, "rb") as fh:
        _check(os.fstat(fd), max_bytes)
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise UnreadableFile(exc.strerror or str(exc)) from None
    if len(data) > max_bytes:
        raise UnreadableFile(f"at most {_size(max_bytes)} (it grew while being read)")
    return data
