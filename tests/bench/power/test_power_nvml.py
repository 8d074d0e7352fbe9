"""NvmlReader against a fake pynvml installed at its import site (no GPU, no real NVML)."""

from __future__ import annotations

import sys
import time

import pytest

from icb_bench.bench.power import NullReader, PowerError, Sampler, reader_for
from icb_bench.bench.power.nvml import NvmlReader, normalize_uuid, nvml_refcount


def run_window(reader: NvmlReader, seconds: float = 0.5):
    with Sampler(reader, hz=20.0) as s:
        win = s.begin_window()
        time.sleep(seconds)
        return s.end_window(win), win


def test_counter_difference_at_window_edges(install_pynvml, gpus) -> None:
    gpus[0].reported_power_w = 250.0  # the polled power disagrees: only the counter gives 300 W
    install_pynvml(gpus)
    with NvmlReader(0) as r:
        assert r.has_energy_counter
        res, _ = run_window(r, 0.5)
    assert res.method == "counter"
    assert res.source == "nvml:nvmlDeviceGetTotalEnergyConsumption"
    assert res.energy_j == pytest.approx(300.0 * res.window_s, abs=0.3)  # mJ quantum, µs edge skew
    assert res.energy_j == pytest.approx(150.0, rel=0.1)
    assert res.power_w == pytest.approx(300.0, rel=0.01)
    assert res.telemetry["sm_clock_mhz_median"] == 1980.0
    assert res.telemetry["temperature_c_max"] == 61.0 and res.telemetry["power_limit_w"] == 700.0


def test_energy_not_supported_falls_back_to_polled_power(install_pynvml, gpus) -> None:
    gpus[0].energy_supported = False
    gpus[0].reported_power_w = 250.0
    install_pynvml(gpus)
    with NvmlReader(0) as r:
        assert not r.has_energy_counter and r.energy_j() is None
        assert r.describe()["energy_counter"] is False
        res, win = run_window(r, 0.3)
    assert res.method == "polled"
    assert "not supported" in (res.note or "")
    assert res.source == "nvml:field NVML_FI_DEV_POWER_INSTANT"
    assert res.energy_j == pytest.approx(250.0 * res.window_s, rel=1e-6)
    assert all(row["power_w"] == 250.0 for row in win.trace_rows())


def test_units_and_power_source(install_pynvml, gpus) -> None:
    gpus[0].instant_supported = False
    gpus[0].reported_power_w = 123.456
    install_pynvml(gpus)
    with NvmlReader(0) as r:
        smp = r.sample()
        d = r.describe()
    assert "nvmlDeviceGetPowerUsage" in r.power_source
    assert smp.power_w == pytest.approx(123.456)  # mW -> W
    assert smp.power_limit_w == 700.0
    assert smp.energy_j is not None and smp.energy_j > 5000.0  # mJ -> J: counter starts at 5e6 mJ
    assert smp.sm_clock_mhz == 1980 and smp.mem_clock_mhz == 2619 and smp.temperature_c == 61
    assert d["power_limit_w"] == 700.0 and d["device_name"] == "NVIDIA H100 80GB HBM3"
    assert d["driver_version"] == "550.54.15" and d["nvml_version"] == "12.550.54.15"
    assert d["serial"] == "1324" and d["uuid"] == gpus[0].uuid


def test_serial_not_supported_is_none(install_pynvml, gpus) -> None:
    gpus[0].serial = None
    install_pynvml(gpus)
    with NvmlReader(0) as r:
        assert r.describe()["serial"] is None


@pytest.mark.parametrize(
    ("mask", "flagged"),
    [
        (0x4 | 0x1, []),  # at the power cap: the operating point, not throttling
        (0x8 | 0x20 | 0x40 | 0x80, ["HwSlowdown", "SwThermal", "HwThermal", "HwPowerBrake"]),
        (0x1 | 0x2 | 0x10 | 0x100, []),
        (0, []),
    ],
)
def test_throttle_decoding(install_pynvml, gpus, mask: int, flagged: list[str]) -> None:
    gpus[0].throttle = mask
    install_pynvml(gpus)
    with NvmlReader(0) as r:
        assert r.decode_throttle(mask) == flagged
        res, _ = run_window(r, 0.15)
    assert res.throttled is bool(flagged)
    assert res.throttle_reasons == flagged


def test_throttle_with_old_bindings(install_pynvml, gpus) -> None:
    gpus[0].throttle = 0x40
    install_pynvml(gpus, old_bindings=True)
    with NvmlReader(0) as r:
        assert r.sample().throttle_reasons == 0x40
    assert NvmlReader.decode_all(0x41) == ["GpuIdle", "HwThermal"]


def test_nvml_errors_become_power_errors(install_pynvml, gpus) -> None:
    m = install_pynvml(gpus)
    with NvmlReader(0) as r:
        gpus[0].fail_power = m.NVMLError_GpuIsLost()
        with pytest.raises(PowerError, match="GpuIsLost") as ei:
            r.sample()
        assert not isinstance(ei.value, m.NVMLError)
        gpus[0].fail_energy = m.NVMLError_GpuIsLost()
        with pytest.raises(PowerError, match="energy counter read failed"):
            r.energy_j()
    with pytest.raises(PowerError, match="not found"):
        NvmlReader(0, uuid="GPU-ffffffff").open()
    assert nvml_refcount() == 0  # a failed open releases its reference
    with pytest.raises(PowerError, match="before open"):
        NvmlReader(0).sample()


def test_counter_failure_mid_window_falls_back_with_note(install_pynvml, gpus) -> None:
    m = install_pynvml(gpus)
    with NvmlReader(0) as r, Sampler(r) as s:
        win = s.begin_window()
        time.sleep(0.2)
        gpus[0].fail_energy = m.NVMLError_GpuIsLost()
        res = s.end_window(win)
    assert res.method == "polled"
    assert "counter read failed" in (res.note or "")
    assert res.energy_j == pytest.approx(300.0 * res.window_s, rel=1e-6)


def test_init_is_reference_counted(install_pynvml, gpus) -> None:
    m = install_pynvml(gpus)
    a, b = NvmlReader(0), NvmlReader(1)
    a.open()
    b.open()
    assert m.calls == {"init": 1, "shutdown": 0} and nvml_refcount() == 2
    a.close()
    assert m.calls["shutdown"] == 0
    assert b.sample().power_w == 450.0  # still initialised for the other reader
    b.close()
    b.close()  # idempotent
    assert m.calls == {"init": 1, "shutdown": 1} and nvml_refcount() == 0
    with NvmlReader(0) as c:
        c.sample()
    assert m.calls == {"init": 2, "shutdown": 2}


def test_device_matching(install_pynvml, gpus, monkeypatch) -> None:
    install_pynvml(gpus)
    bare = gpus[1].uuid[len("GPU-") :]  # torch spells UUIDs without the prefix
    assert normalize_uuid(bare) == gpus[1].uuid
    with NvmlReader(0, uuid=bare) as r:
        assert r.describe()["uuid"] == gpus[1].uuid and r.matched_by == "uuid"
    with NvmlReader(0, pci_bus_id="00000000:3b:00.0") as r:
        assert r.describe()["uuid"] == gpus[1].uuid and r.matched_by == "pci_bus_id"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", gpus[1].uuid)
    with NvmlReader(0) as r:
        assert r.describe()["uuid"] == gpus[1].uuid
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    with NvmlReader(1) as r:
        assert r.describe()["uuid"] == gpus[0].uuid
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with NvmlReader(1) as r:
        assert r.describe()["uuid"] == gpus[1].uuid and r.matched_by.startswith("index")


def test_reader_for_cuda_matches_by_uuid(install_pynvml, gpus) -> None:
    from icb_bench.kernels.backends.base import DeviceInfo

    install_pynvml(gpus)
    info = DeviceInfo(index=0, backend="cuda", model="H100", vendor="nvidia", uuid=gpus[1].uuid)
    r = reader_for("cuda", 0, info)
    try:
        assert isinstance(r, NvmlReader) and r.describe()["uuid"] == gpus[1].uuid
    finally:
        r.close()
    r = reader_for("cuda", 0, {"pci_bus_id": gpus[0].pci_bus_id})
    try:
        assert isinstance(r, NvmlReader) and r.describe()["uuid"] == gpus[0].uuid
    finally:
        r.close()


def test_reader_for_cuda_falls_back_to_null_with_reason(install_pynvml, gpus, monkeypatch) -> None:
    m = install_pynvml(gpus)
    r = reader_for("cuda", 0, {"vendor": "amd", "uuid": "GPU-x"})  # ROCm torch: backend is still "cuda"
    assert isinstance(r, NullReader) and "not an NVIDIA device" in (r.reason or "")
    assert m.calls["init"] == 0
    r = reader_for("cuda", 0, {"uuid": "GPU-ffff"})
    assert isinstance(r, NullReader) and "not found" in (r.reason or "")
    install_pynvml(gpus, init_error="NVMLError_LibraryNotFound")
    r = reader_for("cuda", 0, None)
    assert isinstance(r, NullReader) and "NVML: init failed" in (r.reason or "")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    r = reader_for("cuda", 0, None)
    assert isinstance(r, NullReader) and r.reason.startswith("pynvml not installed (pip install nvidia-ml-py)")
    assert nvml_refcount() == 0


def test_reader_for_unlisted_backends() -> None:
    for backend in ("npu", "no-such-backend"):
        r = reader_for(backend, 0, None)
        assert isinstance(r, NullReader) and backend in (r.reason or "")
