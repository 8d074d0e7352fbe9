"""Joining a multi-node job: the process group, who is who, and each node's clock against rank 0.

Called once per node before anything is measured. Over a gloo process group (CPU only, so it
works beside any accelerator's own collectives) the nodes exchange their names, device counts and
plans — a node running a different plan is an input error on every node — and rank 0 estimates
each node's clock offset by round trips (NTP-style: the offset of the round trip with the
smallest delay, best of :data:`CLOCK_ROUNDS`). Each node draws a token and gives it to rank 0
alone (a gather, never through the store): the key of the MACs on the files it ships, so no node
can ship under another's name. After this, only the store is used: a node that dies later cannot
hang a collective.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from .fleet import FleetError, StoreAddress

#: a node's name: it names a folder of the run on rank 0's disk
NODE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
#: round trips per node for the clock offset (the one with the smallest delay is kept)
CLOCK_ROUNDS = 8


@dataclass
class FleetJob:
    """This node's place in the job, and what rank 0 knows of every node."""

    rank: int
    world_size: int
    node: str
    address: StoreAddress
    run_id: str
    launch: dict[str, Any]
    #: per node: name, rank, hostname, devices (rank order)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    #: rank 0 only: node name -> {"offset_s": node clock − rank 0 clock, "rtt_s": best round trip}
    clock: dict[str, dict[str, float]] = field(default_factory=dict)
    #: rank 0's epoch and monotonic clocks read together (epoch-stamped logs convert with it)
    timeline: dict[str, float] = field(default_factory=dict)
    #: this node's token (keys its shipped files' MACs); never written to any record
    token: str = field(default="", repr=False)
    #: rank 0 only: node name -> that node's token
    peer_tokens: dict[str, str] = field(default_factory=dict, repr=False)
    _store: Any = field(default=None, repr=False)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            try:
                dist.destroy_process_group()
            except Exception:  # noqa: BLE001 - a peer already gone
                pass


def _plan_key(plan: Any) -> dict[str, Any]:
    """What every node must agree on: the whole plan but the devices (each node's own) and
    ``extra`` (each node's drawn nonce where the assessor gave none)."""
    d = plan.to_dict()
    return {k: v for k, v in d.items() if k not in ("devices", "extra")}


def join(launch: Any, node_name: str | None, hostname: str, plan: Any, timeout_s: float) -> FleetJob:
    """Join the job described by ``launch`` (a :class:`~icb_bench.bench.launch_env.LaunchEnv`)."""
    import torch
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", launch.master_addr)
    os.environ.setdefault("MASTER_PORT", str(launch.master_port))
    os.environ["RANK"] = str(launch.rank)
    os.environ["WORLD_SIZE"] = str(launch.world_size)
    timeout = _dt.timedelta(seconds=timeout_s)
    store = None
    try:
        if launch.launcher == "torchrun":  # the store is torchrun's agent's (it outlives a dead worker)
            dist.init_process_group("gloo", init_method="env://", rank=launch.rank, world_size=launch.world_size,
                                    timeout=timeout)
        else:  # rank 0 serves the store, listening on MASTER_ADDR only (not on every interface)
            store = _job_store(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), launch, timeout)
            dist.init_process_group("gloo", store=store, rank=launch.rank, world_size=launch.world_size, timeout=timeout)
    except FleetError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise FleetError(f"cannot join the job at {launch.master_addr}:{launch.master_port} as rank "
                         f"{launch.rank} of {launch.world_size} within {timeout_s:g} s: {exc}") from exc
    try:
        from .launch_env import default_node_name

        mine = {"name": node_name or default_node_name(launch, hostname), "named": node_name is not None, "rank": launch.rank,
                "hostname": hostname, "devices": len(plan.devices), "plan": _plan_key(plan)}
        everyone: list[Any] = [None] * launch.world_size
        dist.all_gather_object(everyone, mine)
        run_id = [f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{everyone[0]['name']}-{secrets.token_hex(3)}"]
        dist.broadcast_object_list(run_id, src=0)
        _check_plans(everyone)
        names = _unique_names(everyone)
        for info, name in zip(everyone, names):
            info["name"] = name
            del info["plan"], info["named"]
        token = secrets.token_hex(16)
        tokens: list[Any] | None = [None] * launch.world_size if launch.rank == 0 else None
        dist.gather_object(token, tokens, dst=0)  # to rank 0 alone: a peer that knew it could pose as this node
        peer_tokens = dict(zip(names, tokens)) if tokens is not None else {}
        clock = _clock_offsets(launch.rank, launch.world_size, names, torch, dist)
    except FleetError:
        dist.destroy_process_group()
        raise
    except Exception as exc:  # noqa: BLE001 - a peer failed during the exchange
        raise FleetError(f"exchange with the other nodes failed: {type(exc).__name__}: {exc}") from exc
    timeline = {"epoch_s": time.time(), "monotonic_s": time.monotonic()}
    address = StoreAddress(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), f"icb-bench/{run_id[0]}")
    job = FleetJob(launch.rank, launch.world_size, names[launch.rank], address, run_id[0], launch.describe(),
                   everyone, clock, timeline, token, peer_tokens)
    job._store = store  # rank 0's store server lives as long as this object
    return job


def _job_store(host: str, port: int, launch: Any, timeout: _dt.timedelta) -> Any:
    """The job's TCPStore: served by rank 0 on a socket bound to ``host`` alone, a client elsewhere."""
    import socket

    import torch.distributed as dist

    if launch.rank != 0:
        return dist.TCPStore(host, port, launch.world_size, False, timeout)
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(1024)
    except OSError as exc:
        raise FleetError(f"MASTER_ADDR={host} MASTER_PORT={port}: rank 0 cannot listen there ({exc}); expected an "
                         "address of rank 0's own host and a free port") from exc
    # the store takes the socket over; keep the Python object from closing it
    store = dist.TCPStore(host, port, launch.world_size, True, timeout, master_listen_fd=sock.detach(),
                          wait_for_workers=False)
    return store


def _check_plans(everyone: list[dict[str, Any]]) -> None:
    ref = everyone[0]["plan"]
    for info in everyone[1:]:
        diff = [k for k in ref if info["plan"].get(k) != ref[k]]
        if diff:
            k = diff[0]
            raise FleetError(f"node {info['name']!r} (rank {info['rank']}) runs a different plan: {k} is "
                             f"{info['plan'].get(k)!r} there and {ref[k]!r} on rank 0; every node must run the same command")


def _unique_names(everyone: list[dict[str, Any]]) -> list[str]:
    """Node names, unique: a name given twice by --node-name is an error; a hostname shared by
    several processes (several test "nodes" on one host) gets its rank appended."""
    names = [str(i["name"]) for i in everyone]
    seen: dict[str, int] = {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
    out = []
    for info, n in zip(everyone, names):
        if seen[n] > 1:
            if info["named"]:
                raise FleetError(f"--node-name: {n!r} is given to {seen[n]} ranks; every node needs its own name")
            n = f"{n}-r{info['rank']}"
        if not NODE_NAME.fullmatch(n):
            raise FleetError(f"rank {info['rank']}: node name {n!r} is not one; expected 1-64 ASCII letters, digits, "
                             "'-', '_' or '.' (not starting with '.'); give --node-name")
        out.append(n)
    return out


def _clock_offsets(rank: int, world: int, names: list[str], torch: Any, dist: Any) -> dict[str, dict[str, float]]:
    """Rank 0 pings each node in turn; the node answers with its monotonic clock."""
    buf = torch.zeros(1, dtype=torch.float64)
    if rank != 0:
        for _ in range(CLOCK_ROUNDS):
            dist.recv(buf, src=0)
            buf[0] = time.monotonic()
            dist.send(buf, dst=0)
        return {}
    out = {names[0]: {"offset_s": 0.0, "rtt_s": 0.0, "rounds": 0}}
    for r in range(1, world):
        best: tuple[float, float] | None = None
        for _ in range(CLOCK_ROUNDS):
            t0 = time.monotonic()
            buf[0] = t0
            dist.send(buf, dst=r)
            dist.recv(buf, src=r)
            t1 = time.monotonic()
            rtt, offset = t1 - t0, float(buf[0]) - 0.5 * (t0 + t1)
            if best is None or rtt < best[0]:
                best = (rtt, offset)
        assert best is not None
        out[names[r]] = {"offset_s": best[1], "rtt_s": best[0], "rounds": CLOCK_ROUNDS}
    return out
