"""`bench score` / `bench verify` input errors as a newcomer meets them: one `error:` line, exit 2;
and `bench score --help` carries what the README sends readers there for."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from icb_bench.verify.cli import register

from .conftest import EXAMPLE_COPY, example_dict, write_decl

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    a = typer.Typer()
    register(a)
    return a


def _error_line(res) -> str:
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in res.output
    return lines[0]


def test_score_missing_declaration_is_one_line(app, tmp_path) -> None:
    missing = tmp_path / "nonexistent.yaml"
    line = _error_line(runner.invoke(app, ["score", str(missing)]))
    assert str(missing) in line and "no such file" in line
    assert "bench example declaration" in line  # where to start instead


def test_score_directory_as_declaration(app, tmp_path) -> None:
    line = _error_line(runner.invoke(app, ["score", str(tmp_path)]))
    assert "is a directory" in line


def test_verify_missing_results_is_one_line(app, tmp_path) -> None:
    missing = tmp_path / "no-results"
    line = _error_line(runner.invoke(app, ["verify", "--allow-unsigned", str(EXAMPLE_COPY), str(missing)]))
    assert line.startswith("error: results: ") and str(missing) in line


def test_one_bad_field_is_one_line_naming_field_and_value(app, tmp_path) -> None:
    data = example_dict()
    data["base"]["tier"] = "galactic"
    line = _error_line(runner.invoke(app, ["score", str(write_decl(tmp_path, data))]))
    assert "base.tier" in line and "'galactic'" in line and "expected" in line


def test_several_problems_are_listed_under_one_error_line(app, tmp_path) -> None:
    data = example_dict()
    data["base"]["tier"] = "galactic"
    data["industrial_value"]["enterprises_served"] = "many"
    res = runner.invoke(app, ["score", str(write_decl(tmp_path, data))])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "problems" in lines[0]
    assert not any(line.startswith("error: ") for line in lines[1:])
    assert any("base.tier" in line for line in lines[1:]) and any("enterprises_served" in line for line in lines[1:])


def test_score_help_has_the_details(app) -> None:
    res = runner.invoke(app, ["score", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())
    for needle in ("bench example declaration", "Exit codes: 0 certified, 1 not certified, 2 input error",
                   "--format json", "certified", "indicators", "GFLOPS/W"):
        assert needle in text, needle
