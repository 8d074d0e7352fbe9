"""Is a record's writer still there? A writer lease while a record is open, and its reading.

While :class:`~icb_bench.bench.record.RecordWriter` has a record open, the record holds two
small files, neither part of the record (no file index, no signature, removed at the close):

* ``.writer.lock`` — held with ``flock(LOCK_EX)`` for the writer's lifetime. The kernel drops
  the lock when the process dies however it dies (SIGKILL, OOM), so on the writer's host a
  reader knows for certain: lock held, writer alive; lock free, writer gone.
* ``.heartbeat`` — ``{pid, host, boot_id, started_at, heartbeat_at, heartbeat_unix_s,
  interval_s}``, rewritten atomically every :data:`HEARTBEAT_S`. A copy of the record, or a
  reader on another host (NFS), has no lock to test: a heartbeat older than
  :data:`STALE_AFTER_S` says the writer is gone, and when it was last seen.

A ``running`` record whose writer is gone is a dead run (killed, power loss, a full disk): its
status will never change, and `bench show`, `verify`, `audit` say so.

Torch-free (``verify/`` reads records through this module too).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from . import record
from .inventory import utc_now

LOCK_FILE = record.WRITER_LOCK
HEARTBEAT_FILE = record.HEARTBEAT
HEARTBEAT_SCHEMA = "icb-bench/heartbeat/1"
#: how often an open record's heartbeat is rewritten
HEARTBEAT_S = 2.0
#: a heartbeat older than this (and no lock to test) means the writer is gone: several missed
#: beats, so a loaded host or a slow NFS server does not declare a live run dead
STALE_AFTER_S = 15.0
#: a heartbeat file is a few hundred bytes; anything larger is not one
MAX_HEARTBEAT_BYTES = 64 << 10


def _boot_id() -> str | None:
    """This boot of this host (Linux): the same hostname after a reboot is not the same writer's host."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip() or None
    except OSError:
        return None


class WriterLease:
    """The lock and heartbeat of one open record (see the module docstring)."""

    def __init__(self, run_dir: Path, interval_s: float = HEARTBEAT_S):
        self.run_dir = Path(run_dir)
        self.interval_s = interval_s
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._info: dict[str, Any] = {}
        #: the last heartbeat write that failed (a full disk): the run goes on, the beat is late
        self.last_error: str | None = None

    def acquire(self) -> None:
        """Take the lock (RecordError if another live writer holds it), write the first heartbeat
        and start refreshing it."""
        path = self.run_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o644)
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise record.RecordError(f"{self.run_dir}: another writer holds {LOCK_FILE} (a run still writing this record)") from None
        except OSError as exc:  # a filesystem without flock: the heartbeat alone tells liveness
            self.last_error = f"flock: {exc.strerror or exc}"
        self._fd = fd
        self._info = {"schema": HEARTBEAT_SCHEMA, "pid": os.getpid(), "host": socket.gethostname() or "localhost",
                      "boot_id": _boot_id(), "started_at": utc_now(), "interval_s": self.interval_s}
        text = json.dumps(self._info, sort_keys=True) + "\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode("utf-8"), 0)  # who holds the lock, for a reader on the same host
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="icb-bench-heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        """Rewrite the heartbeat now (atomically); a failed write is kept in ``last_error``, never raised."""
        if not self.run_dir.is_dir():  # removed under a live writer: never re-create it
            self.last_error = "heartbeat: the record directory is gone"
            self._stop.set()
            return
        try:
            record.atomic_write_json(self.run_dir / HEARTBEAT_FILE,
                                     {**self._info, "heartbeat_at": utc_now(), "heartbeat_unix_s": time.time()})
        except OSError as exc:
            self.last_error = f"heartbeat: {exc.strerror or exc}"

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()

    def stop(self) -> None:
        """Stop refreshing the heartbeat (before the close: no write after the final manifest)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def release(self, *, remove: bool = True) -> None:
        """Stop, remove the files (``remove``; a failed close keeps them, for readers to see the
        last heartbeat) and drop the lock."""
        self.stop()
        if remove:
            for name in (HEARTBEAT_FILE, LOCK_FILE):
                try:
                    os.unlink(self.run_dir / name)
                except FileNotFoundError:
                    pass
        if self._fd is not None:
            os.close(self._fd)  # the lock goes with the descriptor
            self._fd = None


# -- reading -------------------------------------------------------------------------------------

def _lock_state(path: Path) -> str:
    """``held`` / ``free`` / ``absent`` / ``unavailable`` (no flock here, or unreadable)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return "absent"
    except OSError:
        return "unavailable"
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return "held"
    except OSError:
        return "unavailable"
    finally:
        os.close(fd)  # also drops the shared lock just taken
    return "free"


def _read_heartbeat(run_dir: Path) -> dict[str, Any] | None:
    p = run_dir / HEARTBEAT_FILE
    if not os.path.lexists(p):
        return None
    try:
        hb = record.parse_record_json(record.read_record_file(run_dir, p, MAX_HEARTBEAT_BYTES), p, "heartbeat")
    except record.RecordError:
        return None
    return hb if isinstance(hb, dict) else None


def _pid_alive(pid: Any) -> bool | None:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return None
    return True


def measurements_on_disk(run_dir: Path) -> int:
    """How many measurement files the record holds (counted, not read)."""
    try:
        return sum(1 for e in os.scandir(Path(run_dir) / record.MEASUREMENTS_DIR)
                   if e.name.endswith(".json") and not e.name.startswith("."))
    except OSError:
        return 0


def _span(age_s: float) -> str:
    return f"{age_s:.0f} s" if age_s < 120 else f"{age_s / 60:.0f} min" if age_s < 7200 else f"{age_s / 3600:.1f} h"


def writer_state(run_dir: Path | str, status: str | None = None, *, now_s: float | None = None) -> dict[str, Any]:
    """The writer of the record at ``run_dir``: ``{state, alive, text, pid, host, same_host, lock,
    pid_alive, started_at, heartbeat_at, heartbeat_age_s, stale_after_s, measurements_on_disk}``.

    ``state``: ``closed`` (status other than running: nothing to tell), ``alive``, ``gone`` or
    ``unknown`` (a running record without lock or heartbeat: an older version, or the writer died
    while starting). ``status``: the manifest's, when the caller has read it already."""
    run_dir = Path(run_dir)
    if status is None:
        try:
            status = record.load_run(run_dir).status
        except record.RecordError:
            status = "unknown"
    if status != "running":
        return {"state": "closed", "alive": False, "text": None}
    now_s = time.time() if now_s is None else now_s
    hb = _read_heartbeat(run_dir) or {}
    lock = _lock_state(run_dir / LOCK_FILE)
    hb_unix = hb.get("heartbeat_unix_s")
    age = max(0.0, now_s - hb_unix) if isinstance(hb_unix, (int, float)) and not isinstance(hb_unix, bool) else None
    boot = _boot_id()
    same_host = bool(hb) and hb.get("host") == socket.gethostname() and (hb.get("boot_id") is None or boot is None
                                                                         or hb.get("boot_id") == boot)
    pid_alive = _pid_alive(hb.get("pid")) if same_host else None
    k = measurements_on_disk(run_dir)
    out: dict[str, Any] = {"pid": hb.get("pid"), "host": hb.get("host"), "same_host": same_host, "lock": lock,
                           "pid_alive": pid_alive, "started_at": hb.get("started_at"), "heartbeat_at": hb.get("heartbeat_at"),
                           "heartbeat_age_s": age, "stale_after_s": STALE_AFTER_S, "measurements_on_disk": k}
    fresh = age is not None and age <= STALE_AFTER_S
    if lock == "held":
        alive = True  # a live process holds it (here, or over NFS)
    elif same_host and lock == "free":
        alive = False  # the kernel dropped the lock: the process is gone, whatever the heartbeat says
    elif same_host and pid_alive is not None:
        alive = pid_alive and fresh  # no flock here: the pid and a fresh beat together
    elif hb.get("host") == socket.gethostname() and hb.get("boot_id") and boot and hb.get("boot_id") != boot:
        alive = False  # written before this host's last reboot (power loss)
    elif hb:
        alive = fresh  # another host or a copy: only the heartbeat's age tells
    else:
        out.update(state="unknown", alive=None,
                   text=(f"writer unknown: status left running and no writer lock or heartbeat in the record (written "
                         f"by an older version, or the writer died while starting); measurements on disk: {k}"))
        return out
    beat = "no heartbeat" if age is None else f"heartbeat {_span(age)} ago"
    if alive:
        where = f"pid {hb.get('pid')} alive" if same_host else f"pid {hb.get('pid')} on {hb.get('host')}"
        late = "" if fresh or age is None else f"; no heartbeat for {_span(age)}: the writer may be stuck or its disk full"
        text = f"running (writer {where}, {beat}{late})"
    else:
        last = f"last heartbeat at {hb.get('heartbeat_at')} ({_span(age)} ago)" if age is not None else "no heartbeat on disk"
        text = (f"writer gone: status left running, {last} — the run died (killed, power loss, disk full); "
                f"measurements on disk: {k}")
    out.update(state="alive" if alive else "gone", alive=alive, text=text)
    return out


def dead_writer_reason(rec: Any) -> str | None:
    """For readers listing records that did not close: the writer's verdict on a ``running`` record
    whose writer is gone (or unknown); None for any other record, or a writer still alive."""
    if getattr(rec, "status", None) != "running":
        return None
    state = writer_state(rec.path, "running")
    return None if state.get("alive") else state.get("text")


__all__ = ["HEARTBEAT_FILE", "HEARTBEAT_S", "LOCK_FILE", "STALE_AFTER_S", "WriterLease", "measurements_on_disk",
           "dead_writer_reason", "writer_state"]
