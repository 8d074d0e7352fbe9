"""Who am I in a multi-node job: the launcher's environment, normalised in one place.

icb-bench runs **one process per node**: that process drives every device of its node in its own
worker processes. A launcher therefore starts one ``bench run`` per node, and this module reads
which one this is from the variables the launcher set. Precedence (the innermost launcher wins):

1. **torchrun** (``TORCHELASTIC_RUN_ID`` set): ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
   ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``, ``MASTER_ADDR``/``MASTER_PORT``. ``LOCAL_WORLD_SIZE`` > 1
   is a usage error: use ``torchrun --nproc-per-node 1``.
2. **k8s-indexed** (``JOB_COMPLETION_INDEX`` set, a Kubernetes indexed Job): the index is the rank;
   the manifest sets ``WORLD_SIZE`` (= completions), ``MASTER_ADDR`` (pod 0's DNS name) and
   ``MASTER_PORT``.
3. **env** (``RANK`` and ``WORLD_SIZE`` set, no torchrun): Kubeflow's PyTorchJob (one replica per
   node, ``nprocPerNode: 1``) or variables set by hand. ``LOCAL_WORLD_SIZE`` > 1 is a usage error.
4. **slurm** (inside an ``srun`` step: ``SLURM_STEP_NUM_TASKS`` set): ``SLURM_PROCID``,
   ``SLURM_LOCALID``, ``SLURM_NODEID``, ``SLURM_STEP_TASKS_PER_NODE``; the master is the first host
   of ``SLURM_STEP_NODELIST`` (else ``SLURM_JOB_NODELIST``) unless ``MASTER_ADDR`` is exported; the
   port is ``MASTER_PORT`` or derived from ``SLURM_JOB_ID`` (:func:`slurm_port`). Several tasks on
   one node are allowed — each is a separate "node" named ``<host>-<localid>`` by
   :func:`default_node_name` (for tests on one host; give ``--node-name`` to name them). A batch
   script's own shell (``SLURM_NTASKS`` > 1 but no step) is a usage error: start bench with srun.

One process (no launcher variables, or a world size of 1) is no job: :func:`detect_launch` returns
None. Inconsistent variables raise :class:`LaunchError` naming the variable, its value and what was
expected. Pure Python: no torch import.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import asdict, dataclass
from typing import Any, Literal, Mapping

Launcher = Literal["torchrun", "slurm", "env", "k8s-indexed"]

#: Slurm jobs without MASTER_PORT get ``SLURM_PORT_BASE + job_id % SLURM_PORT_SPAN`` (15000–24999):
#: below Linux's ephemeral range (32768–60999, so the kernel never hands it to a client socket),
#: clear of Slurm's own 6817–6819 and of torch's default 29500; two concurrent jobs collide only
#: when their ids differ by a multiple of the span and they share the first node.
SLURM_PORT_BASE = 15000
SLURM_PORT_SPAN = 10000

#: every variable this module reads, for code (and tests) that must start from a clean slate
LAUNCH_VARIABLES = (
    "TORCHELASTIC_RUN_ID", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK",
    "MASTER_ADDR", "MASTER_PORT", "JOB_COMPLETION_INDEX",
    "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NODEID", "SLURM_STEP_NODELIST",
    "SLURM_JOB_NODELIST", "SLURM_JOB_ID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_TASKS_PER_NODE",
)

TORCHRUN_NPROC_MESSAGE = ("run one bench process per node: torchrun --nproc-per-node 1 …; "
                          "it drives every device of the node")


class LaunchError(Exception):
    """The launcher's environment is inconsistent or asks for a usage bench does not support."""


class HostlistError(ValueError):
    """A Slurm hostlist expression that does not parse."""


@dataclass(frozen=True)
class LaunchEnv:
    """This process's place in a multi-node job (one bench process per node)."""

    launcher: Launcher
    rank: int  # this bench node's index, 0 .. world_size-1 (rank 0 coordinates)
    world_size: int  # bench nodes (processes) in the job
    local_rank: int  # index among the job's processes on this host
    local_world_size: int  # the job's processes on this host (> 1 only for Slurm test "nodes")
    node_rank: int  # the launcher's index of this host (GROUP_RANK, SLURM_NODEID; = rank otherwise)
    master_addr: str  # where rank 0 serves the job's store
    master_port: int
    job_id: str | None  # TORCHELASTIC_RUN_ID, SLURM_JOB_ID; None where the launcher has none

    def describe(self) -> dict[str, Any]:
        """The fields, for the record."""
        return asdict(self)


def detect_launch(env: Mapping[str, str] = os.environ) -> LaunchEnv | None:
    """The job this process belongs to, or None for a single process (see the module docstring)."""
    if "TORCHELASTIC_RUN_ID" in env:
        return _torchrun(env)
    if "JOB_COMPLETION_INDEX" in env:
        return _k8s_indexed(env)
    if "RANK" in env or "WORLD_SIZE" in env:
        return _plain_env(env)
    if "SLURM_STEP_NUM_TASKS" in env:
        return _slurm(env)
    if "SLURM_NTASKS" in env and _int(env, "SLURM_NTASKS", minimum=1) > 1:
        raise LaunchError(f"SLURM_NTASKS={env['SLURM_NTASKS']} but this is not a job step (no SLURM_STEP_NUM_TASKS): "
                          "start bench with `srun bench run …` so that every node runs its own process")
    return None


def default_node_name(launch: LaunchEnv | None, hostname: str) -> str:
    """The node's name when --node-name is not given: the short host name, plus ``-<local_rank>``
    where the launcher runs several of the job's processes on this host (Slurm test "nodes")."""
    short = hostname.split(".", 1)[0] or hostname
    if launch is not None and launch.local_world_size > 1:
        return f"{short}-{launch.local_rank}"
    return short


def slurm_port(job_id: int) -> int:
    """The master port of a Slurm job that exports no MASTER_PORT (see :data:`SLURM_PORT_BASE`)."""
    return SLURM_PORT_BASE + job_id % SLURM_PORT_SPAN


# --- launchers ---------------------------------------------------------------------------------


def _torchrun(env: Mapping[str, str]) -> LaunchEnv | None:
    world = _int(env, "WORLD_SIZE", minimum=1)
    local_world = _int(env, "LOCAL_WORLD_SIZE", minimum=1)
    if local_world > 1:
        raise LaunchError(f"LOCAL_WORLD_SIZE={local_world}: {TORCHRUN_NPROC_MESSAGE}")
    return _checked(LaunchEnv(
        launcher="torchrun", rank=_int(env, "RANK", minimum=0), world_size=world,
        local_rank=_int(env, "LOCAL_RANK", minimum=0), local_world_size=local_world,
        node_rank=_int(env, "GROUP_RANK", minimum=0), master_addr=env.get("MASTER_ADDR", ""),
        master_port=_port(env, world), job_id=env["TORCHELASTIC_RUN_ID"] or None))


def _k8s_indexed(env: Mapping[str, str]) -> LaunchEnv | None:
    index = _int(env, "JOB_COMPLETION_INDEX", minimum=0)
    if "WORLD_SIZE" not in env:
        raise LaunchError("WORLD_SIZE is not set; expected the indexed Job's completions (number of nodes) "
                          "in the pod's env beside JOB_COMPLETION_INDEX")
    if "RANK" in env and _int(env, "RANK", minimum=0) != index:
        raise LaunchError(f"RANK={env['RANK']} differs from JOB_COMPLETION_INDEX={index}; "
                          "expected the same value or RANK unset")
    world = _int(env, "WORLD_SIZE", minimum=1)
    _one_per_node(env)
    return _checked(LaunchEnv(
        launcher="k8s-indexed", rank=index, world_size=world, local_rank=0, local_world_size=1,
        node_rank=index, master_addr=env.get("MASTER_ADDR", ""), master_port=_port(env, world), job_id=None))


def _plain_env(env: Mapping[str, str]) -> LaunchEnv | None:
    if "RANK" not in env and env.get("WORLD_SIZE") == "1":
        return None  # a stray WORLD_SIZE=1 is a single process
    for name in ("RANK", "WORLD_SIZE"):
        if name not in env:
            other = "WORLD_SIZE" if name == "RANK" else "RANK"
            raise LaunchError(f"{name} is not set but {other}={env[other]} is; expected both (or neither)")
    rank, world = _int(env, "RANK", minimum=0), _int(env, "WORLD_SIZE", minimum=1)
    _one_per_node(env)
    return _checked(LaunchEnv(
        launcher="env", rank=rank, world_size=world, local_rank=0, local_world_size=1,
        node_rank=_int(env, "GROUP_RANK", minimum=0) if "GROUP_RANK" in env else rank,
        master_addr=env.get("MASTER_ADDR", ""), master_port=_port(env, world), job_id=None))


def _slurm(env: Mapping[str, str]) -> LaunchEnv | None:
    world = _int(env, "SLURM_STEP_NUM_TASKS", minimum=1)
    node_id = _int(env, "SLURM_NODEID", minimum=0)
    job_id = env.get("SLURM_JOB_ID") or None
    if world == 1:
        return None
    local_world = _slurm_tasks_on_node(env, node_id)
    master = env.get("MASTER_ADDR") or _first_host(env)
    if "MASTER_PORT" in env:
        port = _port(env, world)
    elif job_id is None:
        raise LaunchError("SLURM_JOB_ID and MASTER_PORT are both unset; expected one of them to choose the master port")
    else:
        port = slurm_port(_int(env, "SLURM_JOB_ID", minimum=0))
    return _checked(LaunchEnv(
        launcher="slurm", rank=_int(env, "SLURM_PROCID", minimum=0), world_size=world,
        local_rank=_int(env, "SLURM_LOCALID", minimum=0), local_world_size=local_world, node_rank=node_id,
        master_addr=master, master_port=port, job_id=job_id))


# --- checks ------------------------------------------------------------------------------------


def _checked(launch: LaunchEnv) -> LaunchEnv | None:
    """Cross-field checks; a world of one process is no job (None)."""
    names = _NAMES[launch.launcher]
    if launch.rank >= launch.world_size:
        raise LaunchError(f"{names[0]}={launch.rank} is not below {names[1]}={launch.world_size}; "
                          f"expected a rank from 0 to {launch.world_size - 1}")
    if launch.local_rank >= launch.local_world_size:
        raise LaunchError(f"{names[2]}={launch.local_rank} is not below the {launch.local_world_size} process(es) "
                          f"on this host; expected 0 to {launch.local_world_size - 1}")
    if launch.world_size == 1:
        return None
    if not launch.master_addr.strip():
        raise LaunchError(f"MASTER_ADDR is not set; expected the host name or address of rank 0 "
                          f"for a job of {launch.world_size} nodes")
    return launch


#: per launcher, the variables behind rank, world size and local rank (for error messages)
_NAMES: dict[str, tuple[str, str, str]] = {
    "torchrun": ("RANK", "WORLD_SIZE", "LOCAL_RANK"),
    "env": ("RANK", "WORLD_SIZE", "LOCAL_RANK"),
    "k8s-indexed": ("JOB_COMPLETION_INDEX", "WORLD_SIZE", "LOCAL_RANK"),
    "slurm": ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID"),
}


def _one_per_node(env: Mapping[str, str]) -> None:
    if "LOCAL_WORLD_SIZE" in env and _int(env, "LOCAL_WORLD_SIZE", minimum=1) > 1:
        raise LaunchError(f"LOCAL_WORLD_SIZE={env['LOCAL_WORLD_SIZE']}: run one bench process per node "
                          "(it drives every device of the node); expected LOCAL_WORLD_SIZE unset or 1")


_DECIMAL = re.compile(r"[0-9]+")  # ASCII digits only: int() would also take '٣' or ' 3 '


def _int(env: Mapping[str, str], name: str, *, minimum: int) -> int:
    if name not in env:
        raise LaunchError(f"{name} is not set; expected an integer ≥ {minimum}")
    text = env[name]
    if not _DECIMAL.fullmatch(text) or int(text) < minimum:
        raise LaunchError(f"{name}={text!r} is not an integer ≥ {minimum}")
    return int(text)


def _port(env: Mapping[str, str], world: int) -> int:
    if "MASTER_PORT" not in env:
        if world == 1:
            return 0  # unused: a world of one is no job
        raise LaunchError(f"MASTER_PORT is not set; expected the TCP port (1–65535) of rank 0's store "
                          f"for a job of {world} nodes")
    port = _int(env, "MASTER_PORT", minimum=1)
    if port > 65535:
        raise LaunchError(f"MASTER_PORT={port} is not a TCP port; expected 1–65535")
    return port


# --- Slurm syntax ------------------------------------------------------------------------------


def _first_host(env: Mapping[str, str]) -> str:
    for name in ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST"):
        if env.get(name):
            try:
                return expand_hostlist(env[name])[0]
            except HostlistError as exc:
                raise LaunchError(f"{name}={env[name]!r}: {exc}") from exc
    raise LaunchError("SLURM_STEP_NODELIST and SLURM_JOB_NODELIST are both unset; expected the step's node list "
                      "(or MASTER_ADDR) to find rank 0's host")


def _slurm_tasks_on_node(env: Mapping[str, str], node_id: int) -> int:
    """Tasks of the step on this node, from SLURM_STEP_TASKS_PER_NODE (e.g. ``2(x3),1``)."""
    name = "SLURM_STEP_TASKS_PER_NODE"
    if name not in env:
        return 1  # an older srun without it: the node's task count is unknown, assume one
    try:
        counts = expand_tasks_per_node(env[name])
    except ValueError as exc:
        raise LaunchError(f"{name}={env[name]!r}: {exc}") from exc
    if node_id >= len(counts):
        raise LaunchError(f"SLURM_NODEID={node_id} is beyond {name}={env[name]!r} ({len(counts)} node(s)); "
                          f"expected 0 to {len(counts) - 1}")
    return counts[node_id]


_TASKS_ITEM = re.compile(r"([0-9]+)(?:\(x([0-9]+)\))?")


def expand_tasks_per_node(text: str) -> list[int]:
    """Slurm's tasks-per-node list, ``2(x3),1`` → ``[2, 2, 2, 1]``."""
    out: list[int] = []
    for item in text.split(","):
        m = _TASKS_ITEM.fullmatch(item.strip())
        if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
            raise ValueError(f"{item!r} is not a task count; expected items like 2 or 2(x3)")
        out.extend([int(m.group(1))] * int(m.group(2) or 1))
    return out


def expand_hostlist(text: str) -> list[str]:
    """Slurm hostlist syntax → host names in order: ``node[01-03,07],gpu-a[1-2]`` →
    node01 node02 node03 node07 gpu-a1 gpu-a2. Several bracket groups in one name multiply
    (``r[1-2]n[1-2]`` → r1n1 r1n2 r2n1 r2n2); a range keeps its lower bound's zero padding."""
    hosts: list[str] = []
    for item in _split_top_level(text):
        hosts.extend(_expand_item(item))
    if not hosts:
        raise HostlistError("empty host list; expected names like node[01-03],gpu1")
    return hosts


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets; brackets must balance and not nest."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            if depth:
                raise HostlistError(f"nested '[' at position {i}; expected ranges like node[01-03]")
            depth = 1
        elif ch == "]":
            if not depth:
                raise HostlistError(f"']' without '[' at position {i}")
            depth = 0
        elif ch == "," and not depth:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise HostlistError("'[' is never closed")
    items.append(text[start:])
    return [s.strip() for s in items if s.strip()]


_GROUP = re.compile(r"\[([^\]]*)\]")
_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")


def _expand_item(item: str) -> list[str]:
    parts = _GROUP.split(item)  # literal, group, literal, group, ..., literal
    choices: list[list[str]] = []
    for i, part in enumerate(parts):
        choices.append(_expand_group(part) if i % 2 else [part])
    return ["".join(p) for p in itertools.product(*choices)]


def _expand_group(body: str) -> list[str]:
    out: list[str] = []
    for rng in body.split(","):
        m = _RANGE.fullmatch(rng.strip())
        if not m:
            raise HostlistError(f"[{body}]: {rng!r} is not a number or range; expected e.g. 01-03")
        lo, hi = m.group(1), m.group(2) or m.group(1)
        if int(hi) < int(lo):
            raise HostlistError(f"[{body}]: range {rng!r} runs backwards; expected low-high")
        out.extend(str(n).zfill(len(lo)) for n in range(int(lo), int(hi) + 1))
    return out
