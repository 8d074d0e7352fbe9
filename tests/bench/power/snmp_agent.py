"""A real SNMP agent on loopback for the SNMP reader's tests: ``snmpsim-command-responder``.

snmpsim serves the ``.snmprec`` files of ``data/snmp/`` (one per community: ``apc-rpdu2``,
``raritan-pdu2``, ``custom``) on 127.0.0.1 (and ::1 when asked) at a free UDP port, with one
SNMPv3 USM user. What these tests rely on, found by reading snmpsim 1.2 and trying it:

* the community is the data file's name; an SNMPv3 request with an empty context name is
  answered from ``self.snmprec`` (the context engine ID is the agent's own, which snmpsim names
  ``self``), so :meth:`SnmpAgent.start` copies the file named by ``v3_data`` there;
* values tagged ``:writecache`` (``2:writecache|value=613``) answer their value until a SET
  changes it; the cache is keyed by OID for the whole agent, so a SET through one community
  changes that OID in every file;
* as root, snmpsim refuses to run unless it drops privileges or ``SNMPSIM_ALLOW_ROOT=true``
  (set here: the agent only ever binds loopback).

A v2c request with an unknown community is dropped without an answer (the reader times out).
Every wait is bounded; :meth:`SnmpAgent.stop` terminates the process and removes its folder.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data" / "snmp"
RESPONDER = "import sys; from snmpsim.commands.responder import main; sys.exit(main())"


class AgentUnavailable(RuntimeError):
    """snmpsim is not installed or did not start answering (the fixture skips)."""


@dataclass(frozen=True)
class V3User:
    """The SNMPv3 USM user the agent accepts (snmpsim's protocol names)."""

    user: str = "icb-reader"
    auth_protocol: str = "SHA"
    auth_key: str = "auth-Pa55-word"
    priv_protocol: str = "AES"
    priv_key: str = "priv-Pa55-word"


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port on ``host`` that nothing had bound (bound, then released)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class SnmpAgent:
    """One snmpsim process serving the test data on loopback."""

    def __init__(self, v3: V3User = V3User(), v3_data: str = "apc-rpdu2", ipv6: bool = False) -> None:
        self.v3 = v3
        self.v3_data = v3_data
        self.ipv6 = ipv6
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, ready_timeout_s: float = 60.0, attempts: int = 3) -> "SnmpAgent":
        try:
            import pysnmp  # noqa: F401
            import snmpsim  # noqa: F401
        except ImportError as e:
            raise AgentUnavailable(f"snmpsim/pysnmp not installed ({e}): pip install -e '.[test]'") from e
        self._dir = Path(tempfile.mkdtemp(prefix="icb-snmpsim-"))
        data = self._dir / "data"
        data.mkdir()
        for f in DATA_DIR.glob("*.snmprec"):
            shutil.copy(f, data / f.name)
        shutil.copy(DATA_DIR / f"{self.v3_data}.snmprec", data / "self.snmprec")
        last = ""
        for _ in range(attempts):  # a free port can be taken between probing and binding
            self.port = free_udp_port(self.host)
            self._launch()
            try:
                self._wait_ready(ready_timeout_s)
                return self
            except AgentUnavailable as e:
                last = str(e)
                self._terminate()
        self.stop()
        raise AgentUnavailable(last)

    def _launch(self) -> None:
        assert self._dir is not None
        cache = self._dir / f"cache-{self.port}"
        cache.mkdir()
        v = self.v3
        args = [
            sys.executable, "-c", RESPONDER,
            f"--data-dir={self._dir / 'data'}",
            f"--cache-dir={cache}",
            f"--agent-udpv4-endpoint={self.host}:{self.port}",
            f"--v3-user={v.user}",
            f"--v3-auth-proto={v.auth_protocol}",
            f"--v3-auth-key={v.auth_key}",
            f"--v3-priv-proto={v.priv_protocol}",
            f"--v3-priv-key={v.priv_key}",
            f"--logging-method=file:{self.log_path}",
        ]
        if self.ipv6:
            args.append(f"--agent-udpv6-endpoint=[::1]:{self.port}")
        env = dict(os.environ, SNMPSIM_ALLOW_ROOT="true")
        with open(self._dir / "stderr.txt", "ab") as err:  # the child keeps its own copy
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, env=env)

    @property
    def log_path(self) -> Path:
        assert self._dir is not None
        return self._dir / "snmpsim.log"

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AgentUnavailable(f"snmpsim exited with {self.proc.returncode}: {self._tail()}")
            try:
                self.get("apc-rpdu2", "1.3.6.1.2.1.1.1.0", timeout_s=1.0)
                return
            except (TimeoutError, OSError, RuntimeError):
                time.sleep(0.2)
        raise AgentUnavailable(f"snmpsim did not answer within {timeout_s:g} s: {self._tail()}")

    def _tail(self) -> str:
        assert self._dir is not None
        text = ""
        for name in ("stderr.txt", "snmpsim.log"):
            p = self._dir / name
            if p.exists():
                text += p.read_text(errors="replace")[-600:]
        return text.strip().replace("\n", " | ")[-900:]

    def kill(self) -> None:
        """SIGKILL the agent (the reader then gets no answer)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def _terminate(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        self._terminate()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- a manager's side, to check and change what the agent serves ---------------------------
    def get(self, community: str, oid: str, timeout_s: float = 2.0) -> Any:
        """One v2c GET; the value, or RuntimeError/TimeoutError."""
        return asyncio.run(self._request("get", community, oid, None, timeout_s))

    def set(self, community: str, oid: str, value: int, type_name: str = "Integer32") -> None:
        """One v2c SET of a ``:writecache`` value (``type_name``: Integer32 or Gauge32)."""
        asyncio.run(self._request("set", community, oid, (type_name, value), 5.0))

    async def _request(self, op: str, community: str, oid: str, value: tuple[str, int] | None, timeout_s: float) -> Any:
        from pysnmp.hlapi.v3arch import asyncio as hlapi

        engine = hlapi.SnmpEngine()
        try:
            target = await hlapi.UdpTransportTarget.create((self.host, self.port), timeout=timeout_s, retries=0)
            args = (engine, hlapi.CommunityData(community, mpModel=1), target, hlapi.ContextData())
            if op == "get":
                res = await hlapi.get_cmd(*args, hlapi.ObjectType(hlapi.ObjectIdentity(oid)), lookupMib=False)
            else:
                assert value is not None
                typed = getattr(hlapi, value[0])(value[1])
                res = await hlapi.set_cmd(*args, hlapi.ObjectType(hlapi.ObjectIdentity(oid), typed), lookupMib=False)
            err_ind, err_status, _, var_binds = res
            if err_ind:
                if type(err_ind).__name__ == "RequestTimedOut":
                    raise TimeoutError(str(err_ind))
                raise RuntimeError(str(err_ind))
            if err_status:
                raise RuntimeError(f"{op} {oid}: {err_status.prettyPrint()}")
            return var_binds[0][1]
        finally:
            engine.close_dispatcher()
