"""Start several `bench run` "nodes" on this host as one job (torchrun agents, loopback only)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

FAKES = Path(__file__).parent / "fakes"
QUICK = ["--quick", "--duration", "2", "--shape", "128x128x128", "--json"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1",
            "PYTHONPATH": f"{FAKES}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "ICB_BENCH_BACKENDS": "sleepy=fleet_backend:Sleepy", **extra}


@dataclass
class Node:
    name: str
    out: Path
    proc: subprocess.Popen

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL the node: its torchrun agent and the bench process (torchrun starts its worker
        in a session of its own, so both groups)."""
        for pgid in [*_children(self.proc.pid), self.proc.pid]:
            _killpg(pgid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def signal_bench(self, sig: int, *, group: bool = True) -> None:
        """Send ``sig`` to the node's bench process (``group``: with its device workers), not to
        its torchrun agent."""
        bench = _children(self.proc.pid)
        assert bench, f"{self.name}: no bench process under its torchrun agent"
        for pid in bench:
            _killpg(pid, sig) if group else os.kill(pid, sig)

    def result(self, timeout: float) -> dict:
        """The `bench run --json` object this node printed. Waits for the bench process, not for
        torchrun's agent: after a node died, the agents' exit barrier holds them up to 300 s."""
        wait_for(lambda: self.stdout().rstrip().endswith("}"), timeout, f"{self.name}'s result")
        wait_for(lambda: not _children(self.proc.pid) or self.proc.poll() is not None, 60, f"{self.name}'s bench process to exit")
        return json.loads(self.stdout())

    def stdout(self) -> str:
        return (self.out.parent / f"{self.name}.out").read_text()

    def stderr(self) -> str:
        return (self.out.parent / f"{self.name}.err").read_text()


@contextlib.contextmanager
def loopback_netns() -> Iterator[list[str]]:
    """A network namespace with nothing but loopback, for the job's processes: torch's store and
    gloo listen on every interface, and in here every interface is 127.0.0.1/::1. Yields the
    command prefix (empty where namespaces cannot be made, e.g. without root: then the job runs
    in the host's namespace, still talking to 127.0.0.1 only)."""
    name = f"icb-test-{os.getpid()}-{secrets.token_hex(3)}"
    made = shutil.which("ip") is not None and subprocess.run(
        ["ip", "netns", "add", name], capture_output=True).returncode == 0
    if made:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True, capture_output=True)
    try:
        yield ["ip", "netns", "exec", name] if made else []
    finally:
        if made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def start_job(tmp: Path, n: int, bench_args: list[str], *, node_env: dict[int, dict[str, str]] | None = None,
              port: int | None = None, prefix: list[str] | None = None,
              node_prefix: dict[int, list[str]] | None = None) -> list[Node]:
    """``n`` torchrun agents (``--nnodes n --nproc-per-node 1``), each a node with its own --out,
    started under ``prefix`` (see :func:`loopback_netns`)."""
    port = port or free_port()
    nodes = []
    for rank in range(n):
        name = f"n{rank}"
        out = tmp / f"out-{name}"
        argv = [*(prefix or []), *(node_prefix or {}).get(rank, []), sys.executable, "-m", "torch.distributed.run", "--nnodes", str(n), "--nproc-per-node", "1",
                "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
                "--no-python", str(Path(sys.executable).parent / "bench"), "run", *bench_args,
                "--node-name", name, "--out", str(out)]
        with open(tmp / f"{name}.out", "w") as so, open(tmp / f"{name}.err", "w") as se:
            proc = subprocess.Popen(argv, stdout=so, stderr=se, env=env(**(node_env or {}).get(rank, {})),
                                    start_new_session=True)
        nodes.append(Node(name, out, proc))
    return nodes


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def wait_for(pred, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
