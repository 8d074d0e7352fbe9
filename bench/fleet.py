"""Coordination of many nodes in one run, over the job's key-value store (torch.distributed's TCPStore).

Every node of a job runs one ``bench run`` process (it drives all the node's devices in its own
worker processes). Rank 0 also runs a :class:`Coordinator` thread. What travels through the store:

* **Common starts.** Every device of every node arrives at the same sequence of barriers (one per
  dtype, before its core phase). A device adds itself to ``arrive/<b>``; the coordinator sets
  ``go/<b>`` once every device still alive has arrived, so all core phases start together, to
  within the store's round trip. A node that never arrives is waited for at most ``timeout_s``,
  then the others start without it and the record says so — a clear timeout, not a hang.
* **Liveness.** Each node's parent writes a heartbeat; a node whose heartbeat stops for
  ``dead_after_s`` is declared dead: its devices no longer hold up any barrier. A device whose
  worker died is reported ``lost`` by its node. A node declared dead that comes back (a network
  blip, a paused process: its heartbeat moves again, or it says it is done) is *back*: it stays
  out of every common start counted while it was dead (the one pending when it came back too,
  if a device already waits there), counts again from the next, and rank 0 waits for its shard
  as for any live node. The
  record says when it was declared dead and when it came back (rank 0's clock).
* **Shards.** Each node ships every file of its shard (measurements as they finish, traces, and
  at the end its manifest) to rank 0 through a store queue, so rank 0 ends with the whole run on
  its own disk even where nodes share no filesystem. Each file carries a MAC keyed by the node's
  own token (drawn at the join, told to rank 0 alone): a file shipped under another node's name
  is rejected, and the rejection recorded.

The store outlives a dead node (with torchrun it lives in the launcher's agent), so a node dying
mid-run costs its own measurements only. Nothing here imports torch at module level: the worker
processes connect lazily.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

#: how often the coordinator looks at barrier counters (the start skew it adds, at most)
POLL_S = 0.005
#: how often rank 0 looks at heartbeats and done flags, and drains the shipped files
LIVENESS_S = 0.5
DRAIN_S = 0.05
#: how often a node's parent writes its heartbeat
HEARTBEAT_S = 1.0
#: the bound on the skew between nodes' core phases (MLPerf Power's bound for timestamps)
MAX_SKEW_S = 0.8
#: after rank 0 finished, how long a live node may send nothing before it counts as missing (at least)
END_STALL_MIN_S = 600.0
#: rank 0's log of the job's coordination, in the run directory beside the merged manifest
FLEET_LOG = "fleet.log"


class FleetError(Exception):
    """The job's store or a peer failed (reported, never a traceback)."""


@dataclass(frozen=True)
class StoreAddress:
    """Where the job's store is, and the key prefix of this run (unique per job)."""

    host: str
    port: int
    prefix: str
    timeout_s: float = 60.0

    def connect(self) -> "Store":
        return Store(self)


class Store:
    """A TCPStore client whose keys carry the run's prefix; torch errors become :class:`FleetError`."""

    def __init__(self, address: StoreAddress):
        import torch.distributed as dist

        self.address = address
        self.prefix = address.prefix
        try:
            self._s = dist.TCPStore(address.host, address.port, is_master=False, wait_for_workers=False,
                                    timeout=_dt.timedelta(seconds=address.timeout_s))
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/DistStoreError
            raise FleetError(f"cannot reach the job's store at {address.host}:{address.port}: {exc}") from exc

    def _k(self, key: str) -> str:
        return f"{self.prefix}/{key}"

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001
            raise FleetError(f"store {what} failed: {type(exc).__name__}: {exc}") from exc

    def set(self, key: str, value: str) -> None:
        self._call(f"set {key}", lambda: self._s.set(self._k(key), value))

    def get(self, key: str) -> bytes:
        return self._call(f"get {key}", lambda: self._s.get(self._k(key)))

    def add(self, key: str, amount: int) -> int:
        return int(self._call(f"add {key}", lambda: self._s.add(self._k(key), amount)))

    def check(self, key: str) -> bool:
        return bool(self._call(f"check {key}", lambda: self._s.check([self._k(key)])))

    def wait(self, key: str, timeout_s: float) -> None:
        self._call(f"wait {key}", lambda: self._s.wait([self._k(key)], _dt.timedelta(seconds=timeout_s)))

    def push(self, queue: str, value: str) -> None:
        self._call(f"queue_push {queue}", lambda: self._s.queue_push(self._k(queue), value))

    def pop(self, queue: str) -> bytes | None:
        """The next value of ``queue``, or None when it is empty (never blocks)."""
        if not self._call(f"queue_len {queue}", lambda: self._s.queue_len(self._k(queue))):
            return None
        return self._call(f"queue_pop {queue}", lambda: self._s.queue_pop(self._k(queue), False))

    def get_json(self, key: str) -> Any:
        return json.loads(self.get(key).decode("utf-8"))


# ------------------------------------------------------------------------------- barrier


@dataclass
class FleetBarrier:
    """One device's side of the job-wide common start (fits ``runner.StartBarrier``).

    Picklable: a spawned worker connects on its first wait. Each device waits at the same
    barriers in the same order (one per dtype of the plan, also when the dtype failed), so the
    n-th wait of every device is the same barrier.
    """

    address: StoreAddress
    node: str
    timeout_s: float
    device: int | None = None
    _count: int = 0
    _store: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {"address": self.address, "node": self.node, "timeout_s": self.timeout_s, "device": self.device,
                "_count": self._count, "_store": None}

    def for_device(self, index: int) -> "FleetBarrier":
        """This barrier as device ``index`` waits at it (its arrivals are told apart from its peers')."""
        return FleetBarrier(self.address, self.node, self.timeout_s, index)

    def wait(self, timeout: float | None = None) -> int:
        name = f"b{self._count}"
        self._count += 1
        if self._store is None:
            self._store = self.address.connect()
        # the device's own mark first: a device lost after it arrived must still count as arrived
        self._store.set(f"arr/{name}/{self.node}/{self.device}", "1")
        arrived = self._store.add(f"arrive/{name}", 1)
        self._store.add(f"arrive/{name}/{self.node}", 1)
        # the coordinator decides when to go (and gives up on a missing node after its own
        # timeout); the slack covers a coordinator that is itself late or gone
        self._store.wait(f"go/{name}", self.timeout_s + 60.0)
        return arrived

    def abort(self) -> None:
        """Nothing to abort job-wide: a device that stops is reported lost by its node."""


# ------------------------------------------------------------------------------- the node side


class NodeLink:
    """A node's parent process in the job: heartbeat, lost devices, shipping its shard to rank 0."""

    def __init__(self, address: StoreAddress, node: str, shard_dir: Path, ship: bool, barrier_timeout_s: float = 900.0,
                 token: str | None = None):
        if ship and not token:
            raise ValueError("a node that ships its shard needs its token (see fleet_job.join)")
        self.address = address
        self._token = token
        self.barrier_timeout_s = barrier_timeout_s  # the job's --fleet-timeout, whatever the runner asks
        self.node = node
        self.shard_dir = Path(shard_dir)
        self.ship_files = ship  # rank 0 writes its own shard in place: nothing to ship
        self._store = address.connect()
        self._hb_store = address.connect()  # one client per thread
        self._shipped: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._hb = threading.Thread(target=self._heartbeat, name="icb-bench-heartbeat", daemon=True)
        self.errors: list[str] = []

    def start(self) -> "NodeLink":
        self._hb.start()
        return self

    def _heartbeat(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                self._hb_store.set(f"hb/{self.node}", str(n))
            except FleetError as exc:
                self.errors.append(str(exc))
            self._stop.wait(HEARTBEAT_S)

    def barrier(self, timeout_s: float) -> FleetBarrier:
        """This node's side of the job's common starts; waits as long as the job's --fleet-timeout
        (the coordinator's own bound), not the runner's default."""
        return FleetBarrier(self.address, self.node, self.barrier_timeout_s)

    def device_lost(self, index: int) -> None:
        """A device of this node stopped (its worker died): it holds up no later barrier (the
        coordinator checks which it had arrived at)."""
        try:
            self._store.push("lost", json.dumps([self.node, index]))
        except FleetError as exc:
            self.errors.append(str(exc))

    def ship(self) -> int:
        """Send every file of the shard that is new or changed since the last call; returns how many."""
        if not self.ship_files:
            return 0
        n = 0
        with self._lock:
            for p in sorted(self.shard_dir.rglob("*")):
                rel = p.relative_to(self.shard_dir).as_posix()
                if not p.is_file() or p.name.startswith(".") or not _safe_rel(rel):
                    continue
                st = p.stat()
                sig = (st.st_size, st.st_mtime_ns)
                if self._shipped.get(rel) == sig:
                    continue
                data = p.read_bytes()
                sha = hashlib.sha256(data).hexdigest()
                assert self._token is not None
                payload = {"node": self.node, "path": rel, "sha256": sha, "mac": ship_mac(self._token, self.node, rel, sha),
                           "b64": base64.b64encode(data).decode("ascii")}
                try:
                    self._store.push("files", json.dumps(payload))
                except FleetError as exc:
                    self.errors.append(str(exc))
                    return n
                self._shipped[rel] = sig
                n += 1
        return n

    def finish(self, status: str, summary: dict[str, Any]) -> None:
        """Ship the whole shard, then tell rank 0 this node is done."""
        self.ship()
        try:
            self._store.set(f"done/{self.node}", json.dumps({"status": status, **summary}))
        except FleetError as exc:
            self.errors.append(str(exc))

    def wait_start(self, timeout_s: float) -> None:
        """Wait until rank 0 lets the job load its devices (after the meters' idle reading)."""
        self._store.wait("start", timeout_s)

    def wait_merged(self, timeout_s: float) -> bool:
        try:
            self._store.wait("merged", timeout_s)
            return True
        except FleetError:
            return False

    def close(self) -> None:
        self._stop.set()
        if self._hb.ident is not None:
            self._hb.join(timeout=5)


def ship_mac(token: str, node: str, rel: str, sha256: str) -> str:
    """The MAC a shipped file carries: HMAC-SHA256 under the shipping node's token over its name,
    the file's path in the shard and its digest (the token itself never travels through the store)."""
    msg = "\0".join((node, rel, sha256)).encode("utf-8")
    return hmac.new(token.encode("utf-8"), msg, hashlib.sha256).hexdigest()


def _safe_rel(rel: str) -> bool:
    """A file of a shard, exactly as a node writes one: ``manifest.json``, ``run.log``, or
    ``measurements/<name>`` / ``traces/<name>`` (no ``..``, no absolute path, no deeper folders)."""
    if not isinstance(rel, str):
        return False
    p = PurePosixPath(rel)
    if p.is_absolute() or any(not part or part.startswith(".") or part == ".." for part in p.parts):
        return False
    if len(p.parts) == 1:
        return p.parts[0] in ("manifest.json", "run.log")
    return len(p.parts) == 2 and p.parts[0] in ("measurements", "traces")


# ------------------------------------------------------------------------------- rank 0


@dataclass
class NodeState:
    name: str
    rank: int
    devices: int
    #: the node's own token from the join (rank 0 alone knows it): the key of its shipped files' MACs
    token: str | None = field(default=None, repr=False)
    last_hb: bytes | None = None
    last_hb_change_s: float = 0.0
    dead: bool = False
    dead_reason: str | None = None
    #: False once declared missing at the end (alive but silent): then nothing brings it back
    revivable: bool = True
    done: dict[str, Any] | None = None
    lost_counted: int = 0  # of this node's devices, how many rank 0 has counted as lost
    #: the first common start (its index) that counts this node's devices again after it came back
    counts_from: int = 0
    #: each time it was declared dead: {declared_dead_s, reason, back_s, back_by} (rank 0's clock)
    deaths: list[dict[str, Any]] = field(default_factory=list)

    def out_of(self, barrier: int) -> bool:
        """Whether this node's devices are left out of common start ``barrier``'s count."""
        return self.dead or bool(self.lost_counted) or barrier < self.counts_from


@dataclass
class BarrierEvent:
    """One common start as rank 0 saw it (rank 0's monotonic clock)."""

    name: str
    first_arrival_s: float
    released_s: float
    arrivals: int
    expected: int
    timed_out: bool = False
    missing_nodes: list[str] = field(default_factory=list)
    #: nodes left out of its count as dead (also one that came back while it was pending)
    dead_nodes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "first_arrival_s": self.first_arrival_s, "released_s": self.released_s,
                "waited_s": self.released_s - self.first_arrival_s, "arrivals": self.arrivals,
                "expected": self.expected, "timed_out": self.timed_out, "missing_nodes": self.missing_nodes,
                "dead_nodes": self.dead_nodes}


class Coordinator:
    """Rank 0's thread: releases common starts, notices dead nodes, receives shards."""

    def __init__(self, address: StoreAddress, nodes: list[NodeState], run_dir: Path, *, timeout_s: float,
                 dead_after_s: float):
        from .orchestrate import RunLog
        from .shard_index import ShardIndex

        self.address = address
        self.nodes = {n.name: n for n in nodes}
        self.run_dir = Path(run_dir)
        self.timeout_s = timeout_s
        self.dead_after_s = dead_after_s
        self.index = ShardIndex(self.run_dir)
        self.total_devices = sum(n.devices for n in nodes)
        self.barriers: list[BarrierEvent] = []
        self.lost_devices: set[tuple[str, int]] = set()
        self.received: dict[str, int] = {n.name: 0 for n in nodes}
        self.rejected: list[str] = []
        self.errors: list[str] = []
        self._store = address.connect()
        #: what rank 0 saw of the job, line by line (deaths, returns, releases, rejected files)
        self.log = RunLog(self.run_dir / FLEET_LOG)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="icb-bench-coordinator", daemon=True)
        self._next = 0
        self._first_arrival: float | None = None

    def start(self) -> "Coordinator":
        now = time.monotonic()
        for n in self.nodes.values():
            n.last_hb_change_s = now
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started (rank 0 may be interrupted before it was)
            self._thread.join(timeout=30)
        try:
            self._drain()
        except FleetError as exc:  # the store gone: what was received is kept
            self.errors.append(str(exc))
        self.log.close()

    # -- the loop
    def _run(self) -> None:
        # the common start is polled often (its latency is the start skew); liveness and the file
        # queue far less: every store call costs CPU on rank 0 and in the store's server, beside a
        # device under measurement
        last_live = last_drain = 0.0
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now - last_live >= LIVENESS_S:
                    self._liveness()
                    last_live = now
                self._barrier_step()
                if now - last_drain >= DRAIN_S:
                    self._drain(limit=256)
                    last_drain = now
            except Exception as exc:  # noqa: BLE001 - keep coordinating: a dead coordinator hangs the job
                if len(self.errors) < 100:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(POLL_S)

    def _liveness(self) -> None:
        now = time.monotonic()
        for n in self.nodes.values():
            if n.dead:
                self._maybe_back(n, now)
                continue
            if n.done is not None:
                continue
            if self._store.check(f"done/{n.name}"):
                n.done = self._store.get_json(f"done/{n.name}")
                self.log.event("node_done", {"node": n.name, "t_s": f"{now:.3f}", "status": n.done.get("status")})
                # a node is done only after every common start it arrived at was released; one
                # that stopped early (interrupted) arrives at no later one: none waits for it
                self._count_lost(n)
                continue
            if n.rank == 0:  # this very process: alive while it asks, however starved its heartbeat
                continue
            hb = self._store.get(f"hb/{n.name}") if self._store.check(f"hb/{n.name}") else None
            if hb != n.last_hb:
                n.last_hb, n.last_hb_change_s = hb, now
            elif now - n.last_hb_change_s > self.dead_after_s:
                n.dead = True
                n.dead_reason = (f"no heartbeat for {now - n.last_hb_change_s:.0f} s" if hb is not None
                                 else f"never connected within {self.dead_after_s:.0f} s")
                n.deaths.append({"declared_dead_s": now, "reason": n.dead_reason, "back_s": None, "back_by": None})
                self.log.event("node_dead", {"node": n.name, "t_s": f"{now:.3f}", "reason": n.dead_reason,
                                             "barrier": f"b{self._next}"})
                self._count_lost(n)

    def _maybe_back(self, n: NodeState, now: float) -> None:
        """A node declared dead whose heartbeat moved again, or that says it is done, is back: it
        counts again from the common start after the pending one (the pending one was counted
        without it), and rank 0 waits for the rest of its shard."""
        if not n.revivable or not n.deaths:
            return
        hb = self._store.get(f"hb/{n.name}") if self._store.check(f"hb/{n.name}") else None
        by = "done" if self._store.check(f"done/{n.name}") else "heartbeat" if hb != n.last_hb else None
        if by is None:
            return
        n.dead, n.dead_reason, n.lost_counted = False, None, 0
        n.last_hb, n.last_hb_change_s = hb, now
        # the pending common start was counted without it: it stays out of that one if a device
        # already waits there (the count never rises under a waiting device), not otherwise
        n.counts_from = self._next + (1 if self._store.add(f"arrive/b{self._next}", 0) else 0)
        n.deaths[-1].update(back_s=now, back_by=by)
        self.log.event("node_back", {"node": n.name, "t_s": f"{now:.3f}", "by": by,
                                     "counts_from": f"b{n.counts_from}"})

    def _count_lost(self, n: NodeState) -> None:
        """A dead or done node arrives at no later common start (see :meth:`_needed`)."""
        n.lost_counted = n.devices

    def _pull_lost(self) -> None:
        while True:
            raw = self._store.pop("lost")
            if raw is None:
                return
            try:
                node, dev = json.loads(raw.decode("utf-8"))
            except (ValueError, TypeError):
                continue
            if node in self.nodes:
                self.lost_devices.add((str(node), int(dev)))

    def _needed(self, index: int) -> int:
        """Arrivals that release common start ``index``: every device, less those that will not come
        — the devices of dead or done nodes (see :meth:`NodeState.out_of`) and the lost ones that
        had not arrived at it before they stopped (one that arrived and then died still counts as
        arrived, on both sides)."""
        self._pull_lost()
        name = f"b{index}"
        need = self.total_devices
        gone = {n.name for n in self.nodes.values() if n.out_of(index)}
        for n in self.nodes.values():
            if n.name in gone:
                need -= max(0, n.devices - self._store.add(f"arrive/{name}/{n.name}", 0))
        for node, dev in self.lost_devices:
            if node not in gone and not self._store.check(f"arr/{name}/{node}/{dev}"):
                need -= 1
        return need

    def _barrier_step(self) -> None:
        name = f"b{self._next}"
        arrivals = self._store.add(f"arrive/{name}", 0)
        if arrivals == 0:
            return
        now = time.monotonic()
        if self._first_arrival is None:
            self._first_arrival = now
        expected = self._needed(self._next)
        timed_out = now - self._first_arrival > self.timeout_s
        if arrivals < expected and not timed_out:
            return
        missing = []
        if arrivals < expected:
            lost_on = {}
            for node, _dev in self.lost_devices:
                lost_on[node] = lost_on.get(node, 0) + 1
            for n in self.nodes.values():
                if not n.out_of(self._next) and \
                        self._store.add(f"arrive/{name}/{n.name}", 0) < n.devices - lost_on.get(n.name, 0):
                    missing.append(n.name)
        dead = [n.name for n in self.nodes.values() if n.dead or self._next < n.counts_from]
        self._store.set(f"go/{name}", repr(now))
        self.barriers.append(BarrierEvent(name, self._first_arrival, now, arrivals, expected,
                                          timed_out and arrivals < expected, missing, dead))
        self.log.event("released", {"barrier": name, "t_s": f"{now:.3f}", "arrivals": arrivals, "expected": expected,
                                    "missing": ",".join(missing) or "-", "dead": ",".join(dead) or "-"})
        self._next += 1
        self._first_arrival = None

    def _drain(self, limit: int | None = None) -> None:
        """Write shipped files into the run directory (``nodes/<node>/<path>``)."""
        n = 0
        while limit is None or n < limit:
            raw = self._store.pop("files")
            if raw is None:
                return
            n += 1
            try:
                payload = json.loads(raw.decode("utf-8"))
                node, rel, data = str(payload["node"]), payload["path"], base64.b64decode(payload["b64"], validate=True)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                self._reject(f"unreadable shipped file ({exc})")
                continue
            st = self.nodes.get(node)
            # rank 0 writes its own shard in place: a file shipped under its name is someone else's
            if st is None or st.rank == 0 or not _safe_rel(rel):
                self._reject(f"{node!r}: {rel!r} is not a file of a known node's shard")
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest != payload.get("sha256"):
                self._reject(f"{node}/{rel}: digest does not match its content")
                continue
            mac = payload.get("mac")
            if st.token is None or not isinstance(mac, str) or \
                    not hmac.compare_digest(mac, ship_mac(st.token, node, rel, digest)):
                self._reject(f"{node}/{rel}: shipped under {node}'s name without {node}'s token (its MAC does not match)")
                continue
            try:
                self._write(node, rel, data, digest)
            except OSError as exc:  # a full or failing disk on rank 0: said, and coordination goes on
                self._reject(f"{node}/{rel}: not written on rank 0 ({exc})")
                continue
            self.received[node] += 1

    def _reject(self, why: str) -> None:
        if len(self.rejected) < 1000:
            self.rejected.append(why)
            self.log.event("rejected", {"why": why})

    def _write(self, node: str, rel: str, data: bytes, digest: str) -> None:
        # written (unless a shared filesystem has these bytes there already), digested and parsed
        # once, as it arrives: the merge at the end re-reads nothing
        self.index.add(node, rel, data, digest=digest)

    # -- the end
    def wait_all_done(self, stall_s: float, until_s: float | None = None) -> bool:
        """Block until every node is done or dead (a dead one is found by its heartbeat); a node
        alive but sending nothing for ``stall_s`` (hung in a device call, say) counts as missing.
        ``until_s`` (rank 0's monotonic clock): give up then; returns whether every node was done or dead."""
        last: dict[str, int | None] = {}
        last_change: dict[str, float] = {}
        while True:
            pending = [n for n in self.nodes.values() if n.done is None and not n.dead]
            if not pending:
                return True
            now = time.monotonic()
            if until_s is not None and now >= until_s:
                return False
            for n in pending:
                # a node that came back from the dead is given the whole stall_s from its return
                if n.name not in last or self.received.get(n.name) != last[n.name]:
                    last[n.name], last_change[n.name] = self.received.get(n.name), now
                elif now - last_change[n.name] > stall_s:
                    n.revivable = False  # its heartbeat may well move: it is hung, not back
                    n.dead, n.dead_reason = True, f"alive but nothing received from it for {stall_s:.0f} s after rank 0 finished"
            for name in [k for k in last if self.nodes[k].dead]:
                del last[name]
            time.sleep(0.05)

    def release_start(self) -> None:
        """Let every node start loading its devices."""
        self._store.set("start", repr(time.monotonic()))

    def announce_merged(self) -> None:
        try:
            self._store.set("merged", "1")
        except FleetError as exc:
            self.errors.append(str(exc))


__all__ = ["Coordinator", "FleetBarrier", "FleetError", "NodeLink", "NodeState", "Store", "StoreAddress",
           "MAX_SKEW_S", "FLEET_LOG", "ship_mac"]
