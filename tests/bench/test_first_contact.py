"""What a newcomer meets first: input errors (one `error:` line, exit 2, fast), `bench show` on a
wrong path, and `bench example declaration`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from icb_bench.bench.cli import app
from icb_bench.bench.cli_example import EXAMPLES, example_text

runner = CliRunner()
TESTS_EXAMPLE = Path(__file__).resolve().parents[1] / "verify" / "data" / "declaration.example.yaml"


def _one_error_line(res, *needles: str) -> str:
    """The result is an input error: exit 2, exactly one line on stderr, `error:` first."""
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in res.output
    return lines[0]


def test_unknown_dtype_is_refused_before_torch_is_imported(tmp_path) -> None:
    """`bench run --dtypes fp17` needs no device to be refused: it must not import torch (the
    import is what took seconds), checked in a fresh interpreter, not by the clock."""
    probe = (
        "import sys\n"
        "from icb_bench.bench.cli import main\n"
        f"sys.argv = ['bench', 'run', '--dtypes', 'fp17', '--out', {str(tmp_path / 'r')!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "print('torch imported' if 'torch' in sys.modules else 'torch not imported', code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["torch", "not", "imported", "2"], proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --dtypes: 'fp17' is not a GEMM dtype"), proc.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--dtypes", "fp17"], ["--dtypes", "'fp17'", "fp16"]),
        (["--shape", "8x8"], ["--shape", "'8x8'", "MxNxK"]),
    ],
)
def test_run_argument_errors_need_no_backend(args, needles, monkeypatch) -> None:
    """Argument checks come before the backend is chosen: a backend that would fail is never reached."""
    import icb_bench.kernels.backends as backends

    def no_backend() -> str:
        raise AssertionError("backend detection reached before the argument checks")

    monkeypatch.setattr(backends, "detect_backend", no_backend)
    _one_error_line(runner.invoke(app, ["run", *args]), *needles)


def test_run_out_is_a_file_refused_before_the_backend(tmp_path, monkeypatch) -> None:
    import icb_bench.kernels.backends as backends

    monkeypatch.setattr(backends, "detect_backend", lambda: (_ for _ in ()).throw(AssertionError("too late")))
    f = tmp_path / "f"
    f.write_text("x")
    _one_error_line(runner.invoke(app, ["run", "--out", str(f)]), "--out", "not a directory")


def test_show_missing_path_says_no_such_directory(tmp_path) -> None:
    line = _one_error_line(runner.invoke(app, ["show", str(tmp_path / "nope")]), "no such directory")
    assert "not a" not in line
    f = tmp_path / "file.json"
    f.write_text("{}")
    _one_error_line(runner.invoke(app, ["show", str(f)]), "is a file", "record directory")
    # an existing directory that is not a record keeps the record reader's message
    _one_error_line(runner.invoke(app, ["show", str(tmp_path)]), "not a bench run record")


# -- bench example ----------------------------------------------------------------------------


def test_example_declaration_prints_the_shipped_file() -> None:
    res = runner.invoke(app, ["example", "declaration"])
    assert res.exit_code == 0, res.output
    assert res.stdout == example_text("declaration")
    # the packaged copy is the one the verify tests score (they must not drift apart)
    assert res.stdout == TESTS_EXAMPLE.read_text(encoding="utf-8")
    assert "schema: icb-declaration/1" in res.stdout


def test_example_declaration_scores_as_printed(tmp_path) -> None:
    """The point of the example: a user can start from it. What it prints loads and scores."""
    site = tmp_path / "site.yaml"
    site.write_text(runner.invoke(app, ["example", "declaration"]).stdout, encoding="utf-8")
    res = runner.invoke(app, ["score", str(site), "--format", "json"])
    assert res.exit_code in (0, 1), res.output  # scored (certified or not), not an input error
    assert res.stdout.lstrip().startswith("{")


def test_example_group_lists_its_examples() -> None:
    res = runner.invoke(app, ["example", "--help"])
    assert res.exit_code == 0
    for name in EXAMPLES:
        assert name in res.stdout


def test_example_is_package_data() -> None:
    """Listed in pyproject's package-data, so a wheel carries it (not only a source checkout)."""
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    package_data = pyproject["tool"]["setuptools"]["package-data"]
    for package, path in EXAMPLES.values():
        patterns = package_data.get(package, [])
        folder = path.rsplit("/", 1)[0]
        assert any(p in (path, f"{folder}/*.yaml", f"{folder}/*") for p in patterns), (package, patterns)


def test_license_is_an_spdx_expression_and_the_build_backend_reads_it() -> None:
    """A TOML table for `project.license` is deprecated (setuptools stops reading it on
    2027-02-18); an SPDX string needs setuptools >= 77 (PEP 639) to build."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    (setuptools,) = [Requirement(r) for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")]
    assert not setuptools.specifier.contains(Version("76.9")), setuptools
    assert setuptools.specifier.contains(Version("77.0"))


def test_readme_points_only_at_files_a_clone_has() -> None:
    """Every repository path the README names in backticks exists in the checkout; nothing
    outside it (a clone has no `../shared/`)."""
    import re

    root = Path(__file__).resolve().parents[2]
    text = (root / "README.md").read_text(encoding="utf-8")
    assert "../" not in text
    paths = {p for p in re.findall(r"`([^`\s:]+/[^`\s:]*)`", text) if not p.startswith("-")}
    assert "verify/data/declaration.example.yaml" in paths
    missing = sorted(p for p in paths if not (root / p).exists())
    assert not missing, missing
