"""Shared by the fuzzers of the bench inputs (site files, meter logs; issue 7 part 6).

A fixed budget and seed (``derandomize``), a guard against runaway cases, the outcome check of a
CLI result (exit 2 and only ``error:`` lines, or a strict-JSON result; never a traceback), the
real CLI in a subprocess under a time limit and an address-space cap, the hostile files put where
an input should be, and a count of the cases tried per input kind.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, settings

from helpers.hangs import hang_guard  # noqa: F401  (re-exported: the fuzz modules import it from here)

#: address space of one CLI subprocess: a case that builds a huge intermediate fails, not the machine
CLI_MEMORY_BYTES = 1 << 30
#: wall-clock bound of one CLI subprocess (generous: the machine is shared; this catches hangs only)
CLI_TIMEOUT_S = 120
#: cases tried per input kind, across the fuzz modules of one session (printed by :func:`report_counts`)
TRIED: Counter[str] = Counter()


def budget(max_examples: int) -> settings:
    """Hypothesis settings of a fuzzer: deterministic, ``max_examples`` cases, no speed checks."""
    return settings(max_examples=max_examples, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


def error_lines(stderr: str) -> list[str]:
    """The error lines of an exit-2 result: at least one, every line ``error: ...``, no traceback."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("error: ") for ln in lines), stderr[-2000:]
    return lines


def outcome(exit_code: int, stdout: str, stderr: str, exception: BaseException | None = None) -> str:
    """'error' (exit 2, only error lines) or 'result' (exit 0/1, strict JSON on stdout); fails otherwise."""
    assert "Traceback" not in stdout + stderr, (stdout + stderr)[-3000:]
    assert exception is None or isinstance(exception, SystemExit), repr(exception)
    if exit_code == 2:
        error_lines(stderr)
        return "error"
    assert exit_code in (0, 1), (exit_code, stderr[-2000:])
    strict_json(stdout)
    return "result"


def strict_json(text: str) -> Any:
    """``text`` parsed as JSON without NaN or Infinity."""
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the JSON output"))


def _cap_memory() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (CLI_MEMORY_BYTES, CLI_MEMORY_BYTES))


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``bench ARGS`` as a subprocess in ``cwd``, under :data:`CLI_TIMEOUT_S` and :data:`CLI_MEMORY_BYTES`."""
    return subprocess.run([sys.executable, "-m", "icb_bench.bench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S, preexec_fn=_cap_memory, env={**os.environ, **(env or {})},
                          stdin=subprocess.DEVNULL)


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _zero(p: Path) -> None:
    os.symlink("/dev/zero", p)


def _directory(p: Path) -> None:
    p.mkdir()


def _huge(p: Path) -> None:
    with open(p, "wb") as fh:  # sparse: 50 MB that take no disk, refused by size before a byte is read
        fh.truncate(50 * 10**6)


#: the things put where an input file should be (the path must not exist yet)
HOSTILE_FILES: dict[str, Callable[[Path], None]] = {"fifo": _fifo, "dev-zero-symlink": _zero, "directory": _directory,
                                                     "50MB-sparse": _huge}


def load_file_module(path: Path, name: str) -> ModuleType:
    """A helper module of another test folder, loaded by path under its own name (no sys.path change)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = sys.modules.get(name) or importlib.util.module_from_spec(spec)
    if name not in sys.modules:
        sys.modules[name] = mod  # dataclasses look their module up while it runs
        spec.loader.exec_module(mod)
    return mod


def report_counts(kinds: tuple[str, ...]) -> str:
    """One line: the cases tried per input kind (``-s`` shows it; the note quotes it)."""
    return "fuzz cases tried: " + ", ".join(f"{k} {TRIED[k]}" for k in kinds) + " (0 crashes: every case passed its check)"


#: the epoch/monotonic clock pair of :func:`fleet_record`'s timeline, and when its load started
FLEET_EPOCH_S, FLEET_MONOTONIC_S = 1_700_000_000.0, 1_000.0


def fleet_record(root: Path) -> tuple[Path, list[str]]:
    """A multi-node record of one rack (``R1``) without rack figures, as `bench racks` takes it:
    written by the verify tests' fleet helper, with a clock timeline. Returns (run dir, node names)."""
    conftest = load_file_module(Path(__file__).parents[1] / "verify" / "conftest.py", "icb_fuzz_verify_records")
    run = conftest.write_fleet(root / "run", {"R1": conftest.RackSpec(130.0)})
    man_path = run / "manifest.json"
    man = json.loads(man_path.read_text(encoding="utf-8"))
    man.update(power=[], aggregates=[], timeline={"epoch_s": FLEET_EPOCH_S, "monotonic_s": FLEET_MONOTONIC_S,
                                                  "load_s": FLEET_MONOTONIC_S - 10})
    man_path.write_text(json.dumps(man), encoding="utf-8")
    return run, [n["name"] for n in man["nodes"]]
