"""Power-limit semantics: the power cap is the operating point, not throttling; the DCGM-style
load check; the NVML reader's limits and reasons through the fake pynvml."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import pytest

from icb_bench.bench.load_check import CLOCK_BELOW_BASE, WindowLoad, cap_summary, operating_point
from icb_bench.bench.power.nvml import NvmlReader
from icb_bench.bench.power.sampler import Sampler
from icb_bench.bench.runner import _operating_point

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent / "power"))
from power_fakes import FakeGpu, make_fake_pynvml  # noqa: E402

LIMITS = {"limit_w": 700.0, "default_w": 700.0, "min_w": 200.0, "max_w": 700.0}


def load(**kw) -> WindowLoad:
    base = dict(power_w=698.0, power_samples_w=[697.0, 698.0, 699.0], limits=LIMITS, cap_reasons=["SwPowerCap"],
                throttle_reasons=[], sm_clock_mhz_median=1300.0)
    return WindowLoad(**{**base, **kw})


def test_power_cap_is_the_operating_point_not_throttling():
    op = operating_point(load())
    assert op["at_power_limit"] is True and op["throttled"] is False and op["throttle_reasons"] == []
    assert op["fully_loaded"] is True and op["load_rel"] == pytest.approx(698 / 700)
    assert op["power_limit"] == LIMITS and op["power_cap_reasons"] == ["SwPowerCap"]


def test_at_the_limit_by_power_alone():
    assert operating_point(load(cap_reasons=[]))["at_power_limit"] is True
    assert operating_point(load(cap_reasons=[], power_samples_w=[600.0] * 3, power_w=600.0))["at_power_limit"] is False
    assert operating_point(load(cap_reasons=[], limits={}))["at_power_limit"] is None


def test_thermal_and_hardware_slowdown_are_throttling():
    op = operating_point(load(throttle_reasons=["SwThermal", "HwSlowdown", "SwThermal"]))
    assert op["throttled"] and op["throttle_reasons"] == ["SwThermal", "HwSlowdown"]
    assert op["at_power_limit"] is True  # both can hold at once


def test_not_fully_loaded_below_three_quarters_of_the_limit():
    op = operating_point(load(power_w=500.0, power_samples_w=[500.0] * 3, cap_reasons=[]))
    assert op["fully_loaded"] is False and op["load_rel"] == pytest.approx(500 / 700)
    assert "71% of the 700 W limit" in op["not_fully_loaded_reason"]
    assert operating_point(load(power_w=526.0, cap_reasons=[]))["fully_loaded"] is True  # 0.751 x
    unknown = operating_point(load(power_w=None, power_samples_w=[], limits={}, cap_reasons=[]))
    assert unknown["fully_loaded"] is None and unknown["not_fully_loaded_reason"] is None


def test_clock_below_base_is_throttling_only_off_the_power_limit():
    capped = operating_point(load(base_sm_clock_mhz=1590.0))
    assert capped["clock_below_base"] is True and not capped["throttled"]
    idle_clock = operating_point(load(base_sm_clock_mhz=1590.0, cap_reasons=[], power_w=400.0,
                                      power_samples_w=[400.0] * 3))
    assert idle_clock["throttled"] and idle_clock["throttle_reasons"] == [CLOCK_BELOW_BASE]
    assert operating_point(load(cap_reasons=[]))["clock_below_base"] is None  # no base clock known: not judged


@pytest.fixture
def fake_nvml(monkeypatch):
    gpu = FakeGpu(uuid="GPU-00000000-0000-0000-0000-000000000001", pci_bus_id="00000000:18:00.0",
                  counter_power_w=698.0, throttle=0x4 | 0x1, power_limit_default_mw=700_000,
                  power_limit_range_mw=(200_000, 700_000))
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml([gpu]))
    return gpu


def test_nvml_reader_limits_and_reasons(fake_nvml):
    with NvmlReader(0) as r:
        assert r.decode_throttle(0x4 | 0x1) == []
        assert r.decode_operating_point(0x4 | 0x1) == ["SwPowerCap"]
        assert r.decode_throttle(0x4 | 0x40) == ["HwThermal"]
        assert r.power_limits() == {"limit_w": 700.0, "management_limit_w": 700.0, "default_w": 700.0,
                                    "min_w": 200.0, "max_w": 700.0}
        assert r.describe()["power_limits"]["default_w"] == 700.0
        assert NvmlReader.decode_all(0x5) == ["GpuIdle", "SwPowerCap"]


def test_capped_window_through_the_sampler_is_at_the_limit_and_not_throttled(fake_nvml):
    with NvmlReader(0) as r:
        sampler = Sampler(r, hz=50.0).start()
        try:
            win = sampler.begin_window()
            time.sleep(0.2)
            window = sampler.end_window(win)
        finally:
            sampler.stop()
        rows = sampler.trace_rows(win)
        op = _operating_point(r, window, rows, sampler.telemetry(win), {"extra": {}})
    assert window.throttled is False and window.throttle_reasons == []
    assert op["at_power_limit"] is True and op["power_cap_reasons"] == ["SwPowerCap"]
    assert op["fully_loaded"] is True and op["throttled"] is False
    assert op["power_limit"]["max_w"] == 700.0


def test_a_lowered_limit_is_recorded_against_its_default(fake_nvml):
    fake_nvml.power_limit_mw = 500_000
    fake_nvml.counter_power_w = 300.0
    fake_nvml.throttle = 0
    with NvmlReader(0) as r:
        limits = r.power_limits()
    op = operating_point(load(power_w=300.0, power_samples_w=[300.0], limits=limits, cap_reasons=[]))
    assert op["power_limit"]["limit_w"] == 500.0 and op["power_limit"]["default_w"] == 700.0
    assert op["fully_loaded"] is False and op["at_power_limit"] is False


def test_a_cap_seen_in_few_samples_is_not_the_operating_point():
    off = dict(power_w=600.0, power_samples_w=[600.0] * 3)  # below the 5 % band of the limit
    assert operating_point(load(cap_share=0.1, **off))["at_power_limit"] is False
    assert operating_point(load(cap_share=0.5, **off))["at_power_limit"] is True
    op = operating_point(load(cap_share=0.9, **off))
    assert op["at_power_limit"] is True and op["power_cap_share"] == 0.9


def test_cap_summary_counts_the_masks_that_report_a_cap(fake_nvml):
    with NvmlReader(0) as r:
        assert cap_summary(r, [0x4, 0x0, 0x4 | 0x1, None]) == (["SwPowerCap"], pytest.approx(2 / 3))
        assert cap_summary(r, [None, None]) == ([], None)
    assert cap_summary(object(), [0x4]) == ([], None)  # a reader that cannot decode


def test_the_edge_samples_outside_the_window_do_not_set_the_operating_point(fake_nvml):
    window = SimpleNamespace(window_s=1.0, power_w=600.0, throttle_reasons=[])
    rows = [{"t_s": t, "power_w": 600.0, "throttle_reasons": mask}
            for t, mask in ((-0.05, 0x4), (0.0, 0x0), (0.5, 0x0), (1.0, 0x0), (1.05, 0x4))]
    with NvmlReader(0) as r:
        op = _operating_point(r, window, rows, {}, {"extra": {}})
        capped = _operating_point(r, window, [{**row, "throttle_reasons": 0x4} for row in rows], {}, {"extra": {}})
    assert op["at_power_limit"] is False and op["power_cap_reasons"] == [] and op["power_cap_share"] == 0.0
    assert capped["at_power_limit"] is True and capped["power_cap_share"] == 1.0
