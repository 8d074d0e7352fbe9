"""RaplReader over a fake powercap tree in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from icb_bench.bench.power import NullReader, PowerError, Sampler, reader_for
from icb_bench.bench.power import rapl as rapl_mod
from icb_bench.bench.power.rapl import RaplReader, find_package_zones, is_readable

MAX_UJ = 262_143_328_850  # a real package's max_energy_range_uj


def zone(root: Path, rel: str, name: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    (d / "name").write_text(name + "\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def set_energy(d: Path, energy_uj: int) -> None:
    (d / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """Two packages, their core/dram sub-zones (top level and nested, as sysfs shows them), psys."""
    return {
        "pkg0": zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000),
        "pkg1": zone(tmp_path, "intel-rapl:1", "package-1", 7_000_000),
        "core0": zone(tmp_path, "intel-rapl:0:0", "core", 500_000),
        "nested": zone(tmp_path, "intel-rapl:0/intel-rapl:0:1", "dram", 100_000),
        "psys": zone(tmp_path, "intel-rapl:2", "psys", 9_000_000),
        "mmio": zone(tmp_path, "intel-rapl-mmio:0", "package-0", 1_000_000),
        "root": tmp_path,
    }


def test_only_package_zones_are_summed(tree) -> None:
    assert [p.name for p in find_package_zones(tree["root"])] == ["intel-rapl:0", "intel-rapl:1"]
    with RaplReader(tree["root"]) as r:
        assert r.has_energy_counter and r.scope == "device"
        assert r.energy_j() == 0.0
        set_energy(tree["pkg0"], 1_000_000 + 1_000_000)
        set_energy(tree["pkg1"], 7_000_000 + 2_000_000)
        for k in ("core0", "nested", "psys", "mmio"):  # parts of or supersets of the packages
            set_energy(tree[k], 50_000_000)
        assert r.energy_j() == pytest.approx(3.0)
        zones = [z["zone"] for z in r.describe()["zones"]]
    assert zones == ["intel-rapl:0", "intel-rapl:1"]


def test_wraparound_across_a_sample(tmp_path: Path) -> None:
    z = zone(tmp_path, "intel-rapl:0", "package-0", MAX_UJ - 1000)
    clock = iter([10.0, 12.0, 14.0])
    with RaplReader(tmp_path, clock=lambda: next(clock)) as r:
        s0 = r.sample()
        assert s0.power_w is None and s0.energy_j == 0.0  # no previous sample: no derivative
        set_energy(z, 500)  # wrapped: 1000 to the end, +1 for the step to 0, then 500
        s1 = r.sample()
        assert s1.energy_j == pytest.approx(1501e-6)
        assert s1.power_w == pytest.approx(1501e-6 / 2.0)
        set_energy(z, 500 + 8_000_000)
        s2 = r.sample()
    assert s2.energy_j == pytest.approx(1501e-6 + 8.0)
    assert s2.power_w == pytest.approx(4.0)


def test_scope_is_a_constructor_argument(tree) -> None:
    assert RaplReader(tree["root"], scope="node").scope == "node"


def test_window_energy_uses_the_counter(tree) -> None:
    with RaplReader(tree["root"]) as r, Sampler(r, hz=20.0) as s:
        win = s.begin_window()
        set_energy(tree["pkg0"], 1_000_000 + 5_000_000)
        res = s.end_window(win)
    assert res.method == "counter" and res.source == "rapl:intel-rapl:0+intel-rapl:1"
    assert res.energy_j == pytest.approx(5.0)


def test_unreadable_counters_fall_back_to_null(tree, monkeypatch) -> None:
    real = rapl_mod._read_text

    def denied(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl_mod, "DEFAULT_ROOT", str(tree["root"]))
    assert is_readable(tree["root"])
    r = reader_for("cpu", 0, None)
    assert isinstance(r, RaplReader)
    r.close()

    monkeypatch.setattr(rapl_mod, "_read_text", denied)
    assert not is_readable(tree["root"])
    with pytest.raises(PowerError, match="permission denied"):
        RaplReader(tree["root"]).open()
    r = reader_for("cpu", 0, None)
    assert isinstance(r, NullReader)
    assert "RAPL not readable (permission denied" in (r.reason or "")


def test_missing_powercap_is_not_readable(tmp_path: Path, monkeypatch) -> None:
    assert not is_readable(tmp_path / "nope")
    monkeypatch.setattr(rapl_mod, "DEFAULT_ROOT", str(tmp_path / "nope"))
    r = reader_for("cpu", 0, None)
    assert isinstance(r, NullReader) and "no package zones" in (r.reason or "")


def test_read_failure_is_a_power_error(tree) -> None:
    with RaplReader(tree["root"]) as r:
        (tree["pkg1"] / "energy_uj").unlink()
        with pytest.raises(PowerError, match="RAPL read failed"):
            r.energy_j()
    with pytest.raises(PowerError, match="before open"):
        RaplReader(tree["root"]).energy_j()
