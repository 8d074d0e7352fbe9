"""A real one-host Slurm cluster for tests: munged, slurmctld and two slurmd, all on 127.0.0.1.

Debian's ``slurm-wlm`` and ``munge`` (``.ci/install-system-packages.sh``). Everything lives in a
temp dir: a fresh munge key and a munged with its own socket; a ``slurm.conf`` with
``SlurmctldHost=<hostname>(127.0.0.1)`` and two nodes ``icbn01``/``icbn02`` that are both this
host (``NodeHostname=<hostname> NodeAddr=127.0.0.1``, one slurmd each, ``slurmd -N``, own port),
so that a step really spans two Slurm nodes with a real hostlist (``icbn[01-02]``). Ports are
free loopback ports; ``CommunicationParameters=NoCtldInAddrAny,NoInAddrAny`` makes slurmctld,
slurmd and srun bind 127.0.0.1 instead of 0.0.0.0. ``ProctrackType=proctrack/linuxproc``,
``TaskPlugin=task/none``: no cgroups. The daemons run in the foreground (``-D``) as our children,
so stopping is terminating the processes we started.

Use the session fixture :func:`slurm_cluster` (import it into the test module); it skips, with
the reason and the daemons' log tails, where the tools are missing or the cluster cannot start.
Node names do not resolve in DNS: a test that connects to the master exports ``MASTER_ADDR``.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from icb_bench.bench.launch_env import LAUNCH_VARIABLES

NODES = ("icbn01", "icbn02")
NODELIST = "icbn[01-02]"
TOOLS = ("munged", "slurmctld", "slurmd", "srun", "sinfo")
#: bounds on a slow shared machine (never a measure of speed: only how long before giving up)
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
#: attempts with fresh ports, for the rare case that a port chosen free is taken before bind
START_ATTEMPTS = 3


class ClusterStartError(Exception):
    """The cluster did not come up (the message carries the daemons' log tails)."""


@dataclass
class SlurmCluster:
    """A running cluster: ``env`` runs srun/sinfo against it; ``ports`` what each daemon binds."""

    root: Path
    conf: Path
    hostname: str
    ports: dict[str, int]  # "slurmctld" and each node name -> TCP port on 127.0.0.1
    env: dict[str, str]
    start_s: float = 0.0  # how long the cluster took to come up
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    nodes: tuple[str, ...] = NODES
    nodelist: str = NODELIST

    def run(self, *argv: str, timeout_s: float = 180.0, extra_env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command (srun, sbatch, sinfo, ...) against this cluster."""
        return subprocess.run(argv, env={**self.env, **(extra_env or {})}, capture_output=True, text=True,
                              timeout=timeout_s, check=False)

    def daemon_pids(self) -> dict[int, str]:
        return {p.pid: name for name, p in self.procs.items() if p.poll() is None}

    def log_tails(self, lines: int = 15) -> str:
        out = []
        for log in sorted((self.root / "log").glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(out)

    def stop(self) -> None:
        """Terminate every daemon we started (slurmd first, munged last); kill what does not exit."""
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=STOP_TIMEOUT_S)
        self.procs.clear()


def missing_tools() -> str | None:
    missing = [t for t in TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]
    if missing:
        return (f"Slurm/munge not installed (missing {', '.join(missing)}); "
                "run .ci/install-system-packages.sh (apt-get install slurm-wlm munge)")
    return None


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_cpus() -> int:
    """CPUs as ``slurmd -C`` reports them (what slurmd will check its config against)."""
    try:
        out = subprocess.run([_tool("slurmd"), "-C"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    m = re.search(r"\bCPUs=(\d+)", out)
    return int(m.group(1)) if m else (os.cpu_count() or 1)


def client_env(conf: Path) -> dict[str, str]:
    """This process's environment without any launcher's variables, pointed at ``conf``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM") and k not in LAUNCH_VARIABLES}
    env["SLURM_CONF"] = str(conf)
    return env


def write_conf(root: Path, hostname: str, ports: dict[str, int], user: str, cpus: int) -> Path:
    nodes = "\n".join(f"NodeName={n} NodeHostname={hostname} NodeAddr=127.0.0.1 Port={ports[n]} "
                      f"CPUs={cpus} State=UNKNOWN" for n in NODES)
    conf = root / "slurm.conf"
    conf.write_text(f"""\
ClusterName=icbtest
SlurmctldHost={hostname}(127.0.0.1)
SlurmctldPort={ports['slurmctld']}
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root / 'munge' / 'munge.sock'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MessageTimeout=60
KillWait=5
MinJobAge=5
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}/%n
SlurmctldPidFile={root / 'slurmctld.pid'}
SlurmdPidFile={root / 'spool'}/slurmd-%n.pid
SlurmctldLogFile={root / 'log' / 'slurmctld.log'}
SlurmdLogFile={root / 'log'}/slurmd-%n.log
{nodes}
PartitionName=debug Nodes={NODELIST} Default=YES MaxTime=INFINITE State=UP
""")
    return conf


def _spawn(cluster: SlurmCluster, name: str, argv: list[str]) -> None:
    log = open(cluster.root / "log" / f"{name}.stdout.log", "wb")  # noqa: SIM115 - the child keeps it
    with log:
        cluster.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                               env=cluster.env, start_new_session=True)


def _wait(cluster: SlurmCluster, what: str, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        dead = [n for n, p in cluster.procs.items() if p.poll() is not None]
        if dead:
            raise ClusterStartError(f"{', '.join(dead)} exited while waiting for {what}\n{cluster.log_tails()}")
        if time.monotonic() > deadline:
            raise ClusterStartError(f"no {what} within {START_TIMEOUT_S:g} s\n{cluster.log_tails()}")
        time.sleep(0.2)


def _nodes_idle(cluster: SlurmCluster) -> bool:
    try:
        out = cluster.run(_tool("sinfo"), "-h", "-N", "-o", "%N %t", timeout_s=60).stdout.split()
    except subprocess.TimeoutExpired:
        return False  # slurmctld busy or not up yet: _wait's deadline decides
    states = dict(zip(out[::2], out[1::2]))
    return all(states.get(n) == "idle" for n in NODES)


def start_cluster(root: Path) -> SlurmCluster:
    """Configure and start munged, slurmctld and one slurmd per node under ``root``."""
    t0 = time.monotonic()
    for d in ("munge-key", "munge", "state", "spool", "log"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "munge-key").chmod(0o700)  # munged refuses a key others can read
    key = root / "munge-key" / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
    hostname = socket.gethostname().split(".", 1)[0]
    ports = {name: free_port() for name in ("slurmctld", *NODES)}
    user = pwd.getpwuid(os.geteuid()).pw_name
    conf = write_conf(root, hostname, ports, user, node_cpus())
    cluster = SlurmCluster(root=root, conf=conf, hostname=hostname, ports=ports, env=client_env(conf))
    sock = root / "munge" / "munge.sock"
    try:
        # --force: the pytest temp dir's parents are not the root-owned paths munged wants
        _spawn(cluster, "munged", [_tool("munged"), "-F", "--force", f"--socket={sock}", f"--key-file={key}",
                                   f"--log-file={root / 'log' / 'munged.log'}", f"--pid-file={root / 'munge' / 'munged.pid'}",
                                   f"--seed-file={root / 'munge' / 'munged.seed'}"])
        _wait(cluster, "munge socket", sock.exists)
        _spawn(cluster, "slurmctld", [_tool("slurmctld"), "-D", "-f", str(conf)])
        for node in NODES:
            _spawn(cluster, f"slurmd-{node}", [_tool("slurmd"), "-D", "-N", node, "-f", str(conf)])
        _wait(cluster, f"idle nodes {NODELIST} in sinfo", lambda: _nodes_idle(cluster))
    except BaseException:
        cluster.stop()
        raise
    cluster.start_s = time.monotonic() - t0
    return cluster


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A running one-host cluster for the whole session (skips where Slurm cannot start)."""
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    cluster: SlurmCluster | None = None
    for attempt in range(START_ATTEMPTS):
        try:
            cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
            break
        except ClusterStartError as exc:
            if "Address already in use" not in str(exc) or attempt == START_ATTEMPTS - 1:
                pytest.skip(f"the test Slurm cluster did not start: {exc}")
    assert cluster is not None
    try:
        yield cluster
    finally:
        cluster.stop()
