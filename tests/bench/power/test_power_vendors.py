"""Non-NVIDIA device readers without vendor hardware: a fake ``amdsmi`` installed at its import
site, and fake ``npu-smi`` / ``cnmon`` executables run as real subprocesses from a temporary PATH."""

from __future__ import annotations

import enum
import os
import stat
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from icb_bench.bench.power import NullReader, PowerError, Sampler, reader_for
from icb_bench.bench.power.amdsmi import WRAP_32, AmdSmiReader, amdsmi_refcount, parse_bdf
from icb_bench.bench.power.smi import (
    CnmonReader,
    NpuSmiReader,
    SmiReader,
    parse_cnmon_power,
    parse_npu_smi_mapping,
    parse_npu_smi_power,
)

# ================================================================================================
# fake amdsmi
# ================================================================================================

NOT_SUPPORTED = 2
NOT_INIT = 32


@dataclass
class FakeAmdGpu:
    """One simulated AMD GPU. The accumulator integrates ``power_w`` exactly."""

    bdf: str
    uuid: str
    power_w: float = 300.0
    reported_power_w: float | None = None  # what power_info says (defaults to power_w)
    power_key: str = "current_socket_power"  # the only power_info key with a value
    energy_supported: bool = True
    resolution_uj: float = 15.3
    start_counts: int = 1_000_000_000
    wrap_bits: int | None = None  # 32: the accumulator wraps like gpu_metrics_v1_0's
    scripted_counts: list[int] | None = None  # returned in order instead of the simulation
    legacy_energy_key: bool = False  # ROCm < 6.1: only "power"
    temperature_c: int = 55
    gfx_mhz: int = 2100
    mem_mhz: int = 1300
    power_limit: int = 750
    t0: float = field(default_factory=time.monotonic)

    def counts(self) -> int:
        if self.scripted_counts:
            return self.scripted_counts.pop(0)
        c = self.start_counts + int(self.power_w * (time.monotonic() - self.t0) / (self.resolution_uj * 1e-6))
        return c % (1 << self.wrap_bits) if self.wrap_bits else c


class _Handle:
    def __init__(self, i: int) -> None:
        self.i = i


def make_fake_amdsmi(gpus: list[FakeAmdGpu], *, init_fails: bool = False) -> types.ModuleType:
    """A module with the amdsmi calls AmdSmiReader uses, shaped like ROCm/amdsmi's
    py-interface (dict payloads, "N/A" for unsupported members, AmdSmiLibraryException.err_code)."""
    m = types.ModuleType("amdsmi")

    class AmdSmiException(Exception):
        pass

    class AmdSmiLibraryException(AmdSmiException):
        def __init__(self, err_code: int) -> None:
            super().__init__(err_code)
            self.err_code = err_code

        def __str__(self) -> str:
            info = {NOT_SUPPORTED: "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported"}.get(self.err_code, "AMDSMI_STATUS_API_FAILED")
            return f"Error code:\n\t{self.err_code} | {info}"

    class AmdSmiInitFlags(enum.IntEnum):
        INIT_AMD_GPUS = 2

    class AmdSmiTemperatureType(enum.IntEnum):
        EDGE = 0
        HOTSPOT = 1

    class AmdSmiTemperatureMetric(enum.IntEnum):
        CURRENT = 0

    class AmdSmiClkType(enum.IntEnum):
        GFX = 1
        MEM = 5

    m.AmdSmiException = AmdSmiException
    m.AmdSmiLibraryException = AmdSmiLibraryException
    m.AmdSmiInitFlags = AmdSmiInitFlags
    m.AmdSmiTemperatureType = AmdSmiTemperatureType
    m.AmdSmiTemperatureMetric = AmdSmiTemperatureMetric
    m.AmdSmiClkType = AmdSmiClkType
    m.calls = {"init": 0, "shutdown": 0, "energy": 0}
    m.live = 0
    handles = [_Handle(i) for i in range(len(gpus))]

    def need_init() -> None:
        if m.live <= 0:
            raise AmdSmiLibraryException(NOT_INIT)

    def gpu(h: _Handle) -> FakeAmdGpu:
        need_init()
        return gpus[h.i]

    def amdsmi_init(flag: Any = AmdSmiInitFlags.INIT_AMD_GPUS) -> None:
        if init_fails:
            raise AmdSmiLibraryException(8)  # AMDSMI_STATUS_DRM_ERROR-like
        assert isinstance(flag, AmdSmiInitFlags)
        m.calls["init"] += 1
        m.live += 1

    def amdsmi_shut_down() -> None:
        m.calls["shutdown"] += 1
        m.live -= 1

    def amdsmi_get_processor_handles() -> list[_Handle]:
        need_init()
        return list(handles)

    def amdsmi_get_energy_count(h: _Handle) -> dict[str, Any]:
        g = gpu(h)
        m.calls["energy"] += 1
        if not g.energy_supported:
            raise AmdSmiLibraryException(NOT_SUPPORTED)
        c = g.counts()
        d: dict[str, Any] = {"power": c, "counter_resolution": g.resolution_uj, "timestamp": time.monotonic_ns()}
        if not g.legacy_energy_key:
            d["energy_accumulator"] = c
        return d

    def amdsmi_get_power_info(h: _Handle) -> dict[str, Any]:
        g = gpu(h)
        p = g.power_w if g.reported_power_w is None else g.reported_power_w
        d: dict[str, Any] = {k: "N/A" for k in ("current_socket_power", "average_socket_power")}
        d.update({"gfx_voltage": "N/A", "soc_voltage": "N/A", "mem_voltage": "N/A", "power_limit": g.power_limit})
        d[g.power_key] = int(round(p))  # amdsmi reports whole watts
        return d

    def amdsmi_get_temp_metric(h: _Handle, sensor: Any, metric: Any) -> int:
        g = gpu(h)
        if sensor == AmdSmiTemperatureType.EDGE:  # MI300 has no edge sensor
            raise AmdSmiLibraryException(NOT_SUPPORTED)
        return g.temperature_c

    def amdsmi_get_clock_info(h: _Handle, clk: Any) -> dict[str, int]:
        g = gpu(h)
        mhz = g.gfx_mhz if clk == AmdSmiClkType.GFX else g.mem_mhz
        return {"clk": mhz, "min_clk": 500, "max_clk": mhz, "clk_locked": 0, "clk_deep_sleep": 0}

    def amdsmi_get_gpu_device_bdf(h: _Handle) -> str:
        return gpu(h).bdf

    def amdsmi_get_gpu_device_uuid(h: _Handle) -> str:
        return gpu(h).uuid

    def amdsmi_get_lib_version() -> dict[str, Any]:
        need_init()
        return {"year": 24, "major": 6, "minor": 2, "release": 0, "build": "fake"}

    for fn in (
        amdsmi_init,
        amdsmi_shut_down,
        amdsmi_get_processor_handles,
        amdsmi_get_energy_count,
        amdsmi_get_power_info,
        amdsmi_get_temp_metric,
        amdsmi_get_clock_info,
        amdsmi_get_gpu_device_bdf,
        amdsmi_get_gpu_device_uuid,
        amdsmi_get_lib_version,
    ):
        setattr(m, fn.__name__, fn)
    return m


@pytest.fixture
def amd_gpus() -> list[FakeAmdGpu]:
    return [
        FakeAmdGpu(bdf="0000:23:00.0", uuid="4bff74a1-0000-1000-80c8-5d7c3b9e6c2a"),
        FakeAmdGpu(bdf="0000:26:00.0", uuid="c2ff74a1-0000-1000-80c8-5d7c3b9e6c2b", power_w=450.0),
    ]


@pytest.fixture
def install_amdsmi(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., types.ModuleType]]:
    """Install a fake amdsmi in sys.modules; checks the init references balance."""
    for var in ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # NVML is never the answer in these tests
    assert amdsmi_refcount() == 0
    installed: list[types.ModuleType] = []

    def install(gpus: list[FakeAmdGpu], **kw: Any) -> types.ModuleType:
        m = make_fake_amdsmi(gpus, **kw)
        monkeypatch.setitem(sys.modules, "amdsmi", m)
        installed.append(m)
        return m

    yield install
    assert amdsmi_refcount() == 0, "a test left an amdsmi reader open"
    for m in installed:
        assert m.live == 0, "amdsmi_init without amdsmi_shut_down"


def run_window(reader: Any, seconds: float = 0.5, hz: float = 20.0):
    with Sampler(reader, hz=hz) as s:
        win = s.begin_window()
        time.sleep(seconds)
        return s.end_window(win), win


def test_amdsmi_counter_gives_energy_over_window(install_amdsmi, amd_gpus) -> None:
    amd_gpus[0].reported_power_w = 250.0  # the polled power disagrees: only the counter gives 300 W
    install_amdsmi(amd_gpus)
    with AmdSmiReader(0) as r:
        assert r.has_energy_counter and r.counter_resolution_uj == 15.3
        res, win = run_window(r, 0.5)
        d = r.describe()
    assert res.method == "counter" and res.source == "amdsmi:amdsmi_get_energy_count"
    assert res.energy_j == pytest.approx(300.0 * res.window_s, rel=0.05)
    assert res.energy_j == pytest.approx(300.0 * res.window_s, abs=0.3)  # 15.3 µJ quantum, µs edge skew
    assert res.power_w == pytest.approx(300.0, rel=0.01)
    assert res.telemetry["temperature_c_max"] == 55.0  # hotspot: the edge sensor is not supported
    assert res.telemetry["sm_clock_mhz_median"] == 2100.0 and res.telemetry["mem_clock_mhz_median"] == 1300.0
    assert res.telemetry["power_limit_w"] == 750.0
    rows = win.trace_rows()
    assert rows and all(row["power_w"] == 250.0 for row in rows)
    assert d["pci_bus_id"] == "0000:23:00.0" and d["energy_counter"] is True and d["amdsmi_version"] == "24.6.2.0"
    assert "current_socket_power" in d["power_source"] and d["matched_by"].startswith("index")


def test_amdsmi_energy_not_supported_falls_back_to_polled(install_amdsmi, amd_gpus) -> None:
    amd_gpus[0].energy_supported = False  # a virtual machine guest
    amd_gpus[0].reported_power_w = 250.0
    install_amdsmi(amd_gpus)
    with AmdSmiReader(0) as r:
        assert not r.has_energy_counter and r.energy_j() is None
        assert "not supported" in (r.counter_note or "")
        res, _ = run_window(r, 0.5)
    assert res.method == "polled" and "amdsmi_get_power_info[current_socket_power]" in res.source
    assert "not supported" in (res.note or "")
    assert res.energy_j == pytest.approx(250.0 * res.window_s, rel=0.05)
    assert res.energy_j == pytest.approx(250.0 * res.window_s, rel=1e-9)  # constant power: exact
    assert res.n_samples >= 3


def test_amdsmi_matches_device_by_bdf_and_uuid(install_amdsmi, amd_gpus) -> None:
    install_amdsmi(amd_gpus)
    # torch on ROCm spells the domain with 8 digits; amdsmi with 4
    with AmdSmiReader(0, pci_bus_id="00000000:26:00.0") as r:
        assert r.matched_by == "pci_bus_id" and r.describe()["pci_bus_id"] == "0000:26:00.0"
        assert r.sample().power_w == 450.0
    with AmdSmiReader(0, uuid="GPU-C2FF74A1-0000-1000-80C8-5D7C3B9E6C2B") as r:
        assert r.matched_by == "uuid" and r.sample().power_w == 450.0
    with pytest.raises(PowerError, match=r"no single device at 0000:99:00.0.*0000:23:00.0, 0000:26:00.0"):
        AmdSmiReader(0, pci_bus_id="0000:99:00.0").open()
    with pytest.raises(PowerError, match="no device with uuid"):
        AmdSmiReader(0, uuid="GPU-ffff").open()
    assert amdsmi_refcount() == 0


def test_amdsmi_visible_devices_remap_the_index(install_amdsmi, amd_gpus, monkeypatch) -> None:
    install_amdsmi(amd_gpus)
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "1")
    with AmdSmiReader(0) as r:
        assert r.sample().power_w == 450.0 and "HIP_VISIBLE_DEVICES" in (r.matched_by or "")


def test_amdsmi_32bit_accumulator_wrap_is_undone(install_amdsmi, amd_gpus) -> None:
    g = amd_gpus[0]
    g.wrap_bits = 32
    g.start_counts = WRAP_32 - 3_000_000  # 45.9 J before the wrap: it wraps ~0.15 s in
    install_amdsmi(amd_gpus)
    with AmdSmiReader(0) as r:
        res, _ = run_window(r, 0.5)
        assert r.counter_wraps == 1 and r.counter_backward_steps == 0
    assert res.method == "counter"
    assert res.energy_j == pytest.approx(300.0 * res.window_s, rel=0.05)


def test_amdsmi_backward_step_is_not_hidden(install_amdsmi, amd_gpus) -> None:
    # a 64-bit accumulator that steps back (ROCm/amdsmi#115): passed through, so the sampler
    # sees "counter went backwards" and integrates the polled power instead
    g = amd_gpus[0]
    g.scripted_counts = [5_000_000_000, 5_100_000_000, 4_900_000_000, 4_950_000_000]
    install_amdsmi(amd_gpus)
    with AmdSmiReader(0) as r:  # the probe consumes the first value
        e1 = r.energy_j()
        e2 = r.energy_j()
        assert e1 == pytest.approx(5_100_000_000 * 15.3e-6)
        assert e2 == pytest.approx(4_900_000_000 * 15.3e-6) and e2 < e1
        assert r.counter_backward_steps == 1 and r.counter_wraps == 0
        assert r.energy_j() == pytest.approx(4_950_000_000 * 15.3e-6)


def test_amdsmi_power_keys_and_legacy_payloads(install_amdsmi, amd_gpus) -> None:
    g = amd_gpus[0]
    g.power_key = "average_socket_power"  # MI200 and older
    g.legacy_energy_key = True  # ROCm < 6.1: the accumulator is under "power"
    g.power_limit = 750_000_000  # raw hwmon power1_cap in µW (amdsmi 6.2)
    install_amdsmi(amd_gpus)
    with AmdSmiReader(0) as r:
        assert "average socket power" in r.power_source and r.has_energy_counter
        s = r.sample()
        assert s.power_w == 300.0 and s.power_limit_w == 750.0 and s.energy_j is not None
    g.power_key = "socket_power"  # amdsmi 6.4+
    with AmdSmiReader(0) as r:
        assert "[socket_power]" in r.power_source


def test_amdsmi_open_failures_release_the_library(install_amdsmi, amd_gpus) -> None:
    install_amdsmi(amd_gpus, init_fails=True)
    with pytest.raises(PowerError, match="amdsmi: init failed"):
        AmdSmiReader(0).open()
    m = install_amdsmi(amd_gpus)
    with pytest.raises(PowerError, match="index 5 but amdsmi sees 2"):
        AmdSmiReader(5).open()
    assert m.live == 0 and amdsmi_refcount() == 0


def test_parse_bdf_spellings() -> None:
    assert parse_bdf("0000:23:00.0") == parse_bdf("00000000:23:00.0") == parse_bdf("23:00.0") == (0, 0x23, 0, 0)
    assert parse_bdf("0001:c1:1f.3") == (1, 0xC1, 0x1F, 3)
    assert parse_bdf("nonsense") is None


def test_reader_for_cuda_amd_goes_to_amdsmi(install_amdsmi, amd_gpus) -> None:
    install_amdsmi(amd_gpus)
    r = reader_for("cuda", 0, {"vendor": "amd", "pci_bus_id": "00000000:26:00.0"})
    try:
        assert isinstance(r, AmdSmiReader) and r.sample().power_w == 450.0
    finally:
        r.close()
    r = reader_for("cuda", 0, {"vendor": "hygon", "pci_bus_id": "0000:3b:00.0"})  # amdsmi loads, no such device
    assert isinstance(r, NullReader) and "no single device at 0000:3b:00.0" in (r.reason or "")
    assert "Hygon DCU through amdsmi is untested" in (r.reason or "")
    r = reader_for("cuda", 0, {"vendor": "metax"})
    assert isinstance(r, NullReader)
    assert "NVML: not an NVIDIA device" in (r.reason or "") and "amdsmi: not an AMD or Hygon device" in (r.reason or "")


def test_reader_for_hygon_without_amdsmi_says_why(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # makes `import amdsmi` raise ImportError
    r = reader_for("cuda", 0, {"vendor": "hygon", "pci_bus_id": "00000000:3b:00.0"})
    assert isinstance(r, NullReader)
    assert "amdsmi: Python package not importable" in (r.reason or "") and "hy-smi" in (r.reason or "")
    assert amdsmi_refcount() == 0


# ================================================================================================
# fake npu-smi and cnmon executables
# ================================================================================================

FAKE_NPU_SMI = r'''#!{python}
"""A fake npu-smi: output shaped like npucli's printf formats (hicann/driver)."""
import os, sys, time
args = sys.argv[1:]
log = os.environ.get("FAKE_SMI_LOG")
if log:
    with open(log, "a") as f:
        f.write(" ".join(args) + "\n")
mode = os.environ.get("FAKE_NPU_MODE", "ok")
if args == ["-v"]:
    print("npu-smi version: 24.1.rc2")
    sys.exit(0)
if args[:2] == ["info", "-m"]:
    if mode == "nomap":
        print("Error: command not supported")
        sys.exit(1)
    sys.stdout.write(os.environ["FAKE_NPU_MAP"])
    sys.exit(0)
if args[:3] == ["info", "-t", "power"]:
    card, chip = args[args.index("-i") + 1], args[args.index("-c") + 1]
    if mode == "sleep":
        time.sleep(5)
    if mode == "garbage":
        print("\tNPU ID                         : %s" % card)
        print("\tSomething Else(X)              : 12")
        sys.exit(0)
    if mode == "fail":
        sys.stderr.write("dcmi_get_device_power_info failed. err is -8005\n")
        sys.exit(2)
    if mode == "rated":
        print("\t%-30s : %.1f" % ("Rated Power Dissipation(W)", 8.0))
        sys.exit(0)
    powers = dict(kv.split("=") for kv in os.environ.get("FAKE_NPU_POWERS", "").split(",") if kv)
    key = "%s:%s" % (card, chip)
    if key not in powers:
        print("This device does not support querying power.")
        sys.exit(255)
    label = "Power Dissipation(W)" if key in os.environ.get("FAKE_NPU_MCU", "").split(",") else "NPU Real-time Power(W)"
    print("\t%-30s : %s" % ("NPU ID", card))
    print("\t%-30s : %s" % ("Chip ID", chip))
    print("\t%-30s : %.1f" % (label, float(powers[key])))
    sys.exit(0)
print("Usage: npu-smi [info|set|...]")
sys.exit(1)
'''

FAKE_CNMON = r'''#!{python}
"""A fake cnmon: the power section shape assumed by CnmonReader (see parse_cnmon_power)."""
import os, sys
args = sys.argv[1:]
log = os.environ.get("FAKE_SMI_LOG")
if log:
    with open(log, "a") as f:
        f.write(" ".join(args) + "\n")
if args == ["version"]:
    print("CNMon version: v5.10.22")
    sys.exit(0)
if args[:2] == ["info", "-c"] and args[3:] == ["-p"]:
    card = args[2]
    powers = dict(kv.split("=") for kv in os.environ.get("FAKE_MLU_POWERS", "").split(",") if kv)
    if card not in powers:
        print("Card %s is not existed!" % card)
        sys.exit(1)
    print("Card %s" % card)
    print("Power")
    print("        %-30s : %s W" % ("Usage", powers[card]))
    print("        %-30s : %s W" % ("Cap", 350))
    sys.exit(0)
sys.exit(1)
'''


def npu_map(rows: list[tuple[int, int, str, str]]) -> str:
    """``npu-smi info -m`` as print_mapping_info() writes it: (card, chip, logic id or '-', name)."""
    out = ["\t%-30s %-30s %-30s %-30s" % ("NPU ID", "Chip ID", "Chip Logic ID", "Chip Name")]
    for card, chip, logic, name in rows:
        if logic == "-":
            out.append("\t%-30d %-30d %-30s %-30s" % (card, chip, "-", name))
        else:
            chip_type, chip_name = name.split(" ", 1)
            out.append("\t%-30d %-30d %-30d %s %s" % (card, chip, int(logic), chip_type, chip_name))
    return "\n".join(out) + "\n"


@pytest.fixture
def smi_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only the fake tools (so no real vendor tool can answer)."""
    d = tmp_path / "bin"
    d.mkdir()
    for name, src in (("npu-smi", FAKE_NPU_SMI), ("cnmon", FAKE_CNMON)):
        p = d / name
        p.write_text(src.replace("{python}", sys.executable))
        p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", str(d))
    monkeypatch.setenv("FAKE_SMI_LOG", str(tmp_path / "calls.log"))
    monkeypatch.delenv("ASCEND_RT_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("MLU_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("FAKE_NPU_MODE", "ok")
    monkeypatch.setenv("FAKE_NPU_MAP", npu_map([(4, 0, "0", "Ascend 910B3"), (5, 0, "1", "Ascend 910B3")]))
    monkeypatch.setenv("FAKE_NPU_POWERS", "4:0=72.3,5:0=181.5")
    monkeypatch.setenv("FAKE_MLU_POWERS", "0=75,1=120")
    return d


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls.log").read_text().splitlines()


def test_npu_smi_maps_index_and_integrates_polled_power(smi_bin, tmp_path) -> None:
    with NpuSmiReader(0) as r:
        assert (r.card, r.chip) == (4, 0) and r.matched_by == "npu-smi info -m: Chip Logic ID 0"
        assert r.command[1:] == ["info", "-t", "power", "-i", "4", "-c", "0"]
        assert not r.has_energy_counter and r.energy_j() is None
        res, win = run_window(r, 0.5)
        d = r.describe()
    assert res.method == "polled" and res.source == "npu-smi:npu-smi info -t power -i 4 -c 0"
    assert d["tool_path"] == str(smi_bin / "npu-smi")
    assert "npu-smi reports power only" in (res.note or "")
    assert res.energy_j == pytest.approx(72.3 * res.window_s, rel=0.05)
    assert res.energy_j == pytest.approx(72.3 * res.window_s, rel=1e-9)  # constant power: exact
    assert all(row["power_w"] == 72.3 for row in win.trace_rows())
    assert d["tool_version"] == "npu-smi version: 24.1.rc2" and d["command"] == r.command
    lat = d["poll_latency_s"]
    assert lat["n"] >= 3 and 0 < lat["min"] <= lat["median"] <= lat["max"] < 2.0
    assert d["max_poll_hz"] == pytest.approx(1.0 / lat["median"])
    log = calls(tmp_path)
    assert log[:2] == ["-v", "info -m"] and log[2] == "info -t power -i 4 -c 0"


def test_npu_smi_ascend_rt_visible_devices(smi_bin, monkeypatch) -> None:
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "1")
    with NpuSmiReader(0) as r:
        assert (r.card, r.chip) == (5, 0) and r.sample().power_w == 181.5


def test_npu_smi_without_mapping_assumes_card_index_chip_0(smi_bin, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_NPU_MODE", "nomap")
    monkeypatch.setenv("FAKE_NPU_POWERS", "1:0=90")
    with NpuSmiReader(1) as r:
        assert (r.card, r.chip) == (1, 0) and r.sample().power_w == 90.0
        assert (r.matched_by or "").startswith("assumed card 1 chip 0")


def test_npu_smi_310p_reads_the_mcu_on_single_chip_cards_only(smi_bin, monkeypatch) -> None:
    # 310P: the NPU chip reports no power; the card's MCU (chip 1) does
    monkeypatch.setenv("FAKE_NPU_MAP", npu_map([(4, 0, "0", "Ascend 310P3"), (4, 1, "-", "Mcu")]))
    monkeypatch.setenv("FAKE_NPU_POWERS", "4:1=25.0")
    monkeypatch.setenv("FAKE_NPU_MCU", "4:1")
    with NpuSmiReader(0) as r:
        assert (r.card, r.chip) == (4, 1) and r.sample().power_w == 25.0
        assert "MCU" in (r.matched_by or "") and any("MCU" in n for n in r.describe()["notes"])
    # a two-chip card (Atlas 300I Duo): the MCU's figure is shared -- refuse rather than double count
    monkeypatch.setenv(
        "FAKE_NPU_MAP", npu_map([(4, 0, "0", "Ascend 310P3"), (4, 1, "1", "Ascend 310P3"), (4, 2, "-", "Mcu")])
    )
    monkeypatch.setenv("FAKE_NPU_POWERS", "4:2=40.0")
    with pytest.raises(PowerError, match="shared by its 2 chips"):
        NpuSmiReader(0).open()


def test_npu_smi_parse_error_names_command_and_text(smi_bin, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_NPU_MODE", "garbage")
    with pytest.raises(PowerError) as ei:
        NpuSmiReader(0, card=0, chip=0).open()
    msg = str(ei.value)
    assert "npu-smi info -t power -i 0 -c 0" in msg and "Something Else(X)" in msg and "no power reading" in msg


def test_npu_smi_rated_power_is_refused(smi_bin, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_NPU_MODE", "rated")
    with pytest.raises(PowerError, match="rated power dissipation"):
        NpuSmiReader(0, card=0, chip=0).open()


def test_npu_smi_nonzero_exit_and_timeout(smi_bin, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_NPU_MODE", "fail")
    with pytest.raises(PowerError, match=r"exited with status 2: .*err is -8005"):
        NpuSmiReader(0, card=0, chip=0).open()
    monkeypatch.setenv("FAKE_NPU_MODE", "sleep")
    t0 = time.monotonic()
    with pytest.raises(PowerError, match=r"`.*npu-smi info -t power -i 0 -c 0` timed out after 0.3 s"):
        NpuSmiReader(0, card=0, chip=0, timeout_s=0.3).open()
    assert time.monotonic() - t0 < 3.0  # the hung tool was killed, not waited for


def test_sample_failures_after_open_raise_power_error(smi_bin, monkeypatch) -> None:
    with NpuSmiReader(0) as r:
        monkeypatch.setenv("FAKE_NPU_MODE", "garbage")
        with pytest.raises(PowerError, match="no power reading"):
            r.sample()


def test_reader_for_npu_and_mlu(smi_bin, monkeypatch, tmp_path) -> None:
    r = reader_for("npu", 1, None)
    try:
        assert isinstance(r, NpuSmiReader) and (r.card, r.chip) == (5, 0)
    finally:
        r.close()
    r = reader_for("mlu", 1, None)
    try:
        assert isinstance(r, CnmonReader) and r.sample().power_w == 120.0
    finally:
        r.close()
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    r = reader_for("npu", 0)
    assert isinstance(r, NullReader) and r.reason == "npu-smi not found on PATH"
    r = reader_for("mlu", 0)
    assert isinstance(r, NullReader) and r.reason == "cnmon not found on PATH"


def test_cnmon_card_mapping_and_window(smi_bin, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLU_VISIBLE_DEVICES", "1,0")
    with CnmonReader(0) as r:
        assert r.card == 1 and r.matched_by == "MLU_VISIBLE_DEVICES entry 0"
        res, _ = run_window(r, 0.5)
        d = r.describe()
    assert res.method == "polled" and res.energy_j == pytest.approx(120.0 * res.window_s, rel=0.05)
    assert d["tool_version"] == "CNMon version: v5.10.22" and d["command"][1:] == ["info", "-c", "1", "-p"]
    assert calls(tmp_path)[:2] == ["version", "info -c 1 -p"]
    with pytest.raises(PowerError, match=r"exited with status 1: 'Card 7 is not existed!'"):
        CnmonReader(0, card=7).open()


def test_generic_smi_reader_with_a_custom_parser(smi_bin) -> None:
    # any vendor tool: a command and a parser are all it takes
    with SmiReader(3, [str(smi_bin / "cnmon"), "info", "-c", "0", "-p"], lambda t: parse_cnmon_power(t) * 2, name="x") as r:
        assert r.sample().power_w == 150.0 and r.power_source.startswith("x:")
        assert r.describe()["tool_version"] is None  # no version command given


# ================================================================================================
# parsers on their own
# ================================================================================================


def test_parse_npu_smi_power_variants() -> None:
    assert parse_npu_smi_power("\tNPU ID                         : 0\n\tNPU Real-time Power(W)         : 296.5\n") == 296.5
    assert parse_npu_smi_power("\t%-30s : %.1f\n" % ("Power Dissipation(W)", 8.0)) == 8.0
    assert parse_npu_smi_power("NPU Real-time Power(mW) : 72300") == pytest.approx(72.3)
    assert parse_npu_smi_power("Power Dissipation : 72.3 W") == 72.3
    for bad in ("NPU Temperature (C) : 40", "Power Limit(W) : 300", "", "NPU Real-time Power(W) : NA"):
        with pytest.raises(ValueError):
            parse_npu_smi_power(bad)


def test_parse_npu_smi_mapping_tables() -> None:
    rows = parse_npu_smi_mapping(npu_map([(4, 0, "0", "Ascend 310P3"), (4, 1, "-", "Mcu")]))
    assert [(r.card, r.chip, r.logic_id, r.name, r.is_npu) for r in rows] == [
        (4, 0, 0, "Ascend 310P3", True),
        (4, 1, None, "Mcu", False),
    ]
    # Ascend 950: no Chip Logic ID column (print_mapping_info_950)
    text = "\t%-30s %-30s %-30s %-30s %-30s\n" % ("NPU ID", "Slot ID", "Chip ID", "Chip Phy-ID", "Chip Name")
    text += "\t%-30d %-30d %-30d %-30d %s\n" % (0, 1, 0, 0, "Ascend950")
    text += "\t%-30d %-30d %-30d %-30d %s\n" % (1, 2, 0, 1, "Ascend950")
    rows = parse_npu_smi_mapping(text)
    assert [(r.card, r.chip, r.logic_id) for r in rows] == [(0, 0, None), (1, 0, None)]
    assert NpuSmiReader._lookup(1, rows)[:2] == (1, 0)
    with pytest.raises(ValueError):
        parse_npu_smi_mapping("There is no NPU card on this server.\n")


def test_parse_cnmon_power_variants() -> None:
    full = (
        "Card 0\n"
        "Product Name                   : MLU370-X8\n"
        "Utilization\n"
        "        MLU Usage              : 40 %\n"
        "Physical Memory Usage\n"
        "        Total                  : 49152 MiB\n"
        "        Used                   : 1024 MiB\n"
        "Power\n"
        "        Usage                  : 75 W\n"
        "        Cap                    : 350 W\n"
    )
    assert parse_cnmon_power(full) == 75.0
    assert parse_cnmon_power("Power Usage : 75.5 W") == 75.5
    assert parse_cnmon_power("Power:\n  Usage(mW) : 75000\n") == 75.0
    assert parse_cnmon_power("Power\n  Usage : N/A\n  Usage : 60 W\n") == 60.0
    # a unitless "Usage" outside a power section is a utilization, never a power
    for bad in ("Utilization\n  Usage : 40 %\n", "Utilization\n  Usage : 40\n", "MLU Usage : 40 %", "Power\n  Cap : 350 W\n", ""):
        with pytest.raises(ValueError):
            parse_cnmon_power(bad)
