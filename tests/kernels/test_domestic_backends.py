"""Domestic families without their hardware: vendor packages absent (detection says why), fakes
of torch_npu / torch_mlu / torch_musa patched at their import site, fake torch.cuda properties for
the families that present torch.cuda, and the vendor / die-layout tables."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from test_plugin_backend import FakeEvent, make_fake_npu

from icb_bench.kernels.backends import backend_class, get_backend
from icb_bench.kernels.backends.base import DOMESTIC_VENDORS
from icb_bench.kernels.backends.cuda import CudaBackend
from icb_bench.kernels.backends.families import FAMILY_BACKENDS, die_layout, identify_cuda_vendor
from icb_bench.kernels.errors import BackendUnavailable

DOMESTIC_FAMILIES = ("huawei", "cambricon", "moorethreads", "hygon", "kunlunxin", "metax", "iluvatar")


def test_every_family_has_a_backend_and_the_domestic_ones_are_domestic() -> None:
    for vendor in DOMESTIC_FAMILIES:
        assert vendor in DOMESTIC_VENDORS and FAMILY_BACKENDS[vendor] in ("npu", "mlu", "musa", "cuda")
    for vendor in ("nvidia", "amd", "intel"):
        assert vendor not in DOMESTIC_VENDORS


@pytest.mark.parametrize(("name", "hip", "vendor"), [
    ("K100_AI", True, "hygon"),
    ("DCU Z100L", True, "hygon"),
    ("AMD Instinct MI250X", True, "amd"),
    ("MetaX C500", False, "metax"),
    ("MXC500", False, "metax"),
    ("Iluvatar MR-V100", False, "iluvatar"),
    ("Iluvatar BI-V150", False, "iluvatar"),
    ("P800 OAM", False, "kunlunxin"),
    ("NVIDIA H100 80GB HBM3", False, "nvidia"),
    ("K100_AI", False, "nvidia"),  # a Hygon name needs a HIP build: the table says so
])
def test_cuda_vendor_rules(name: str, hip: bool, vendor: str) -> None:
    found, why = identify_cuda_vendor(name, hip)
    assert found == vendor and why


def test_die_layouts() -> None:
    assert (die_layout("AMD Instinct MI250X").unit, die_layout("AMD Instinct MI250X").dies_per_card) == ("die", 2)
    assert (die_layout("Ascend910_9391").unit, die_layout("Ascend910_9391").dies_per_card) == ("die", 2)
    default = die_layout("Ascend910B3")
    assert (default.unit, default.dies_per_card) == ("card", 1) and default.source.startswith("assumed")


@pytest.mark.parametrize(("name", "backend"), [("npu", "hccl"), ("mlu", "cncl"), ("musa", "mccl"), ("cuda", "nccl"),
                                               ("xpu", "xccl"), ("cpu", "gloo")])
def test_collective_backend_is_the_backends_word(name: str, backend: str) -> None:
    assert backend_class(name).collective_backend == backend


# -- packages absent ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "package"), [("npu", "torch_npu"), ("mlu", "torch_mlu"), ("musa", "torch_musa")])
def test_absent_package_says_what_is_missing(monkeypatch, name: str, package: str) -> None:
    monkeypatch.setitem(sys.modules, package, None)
    reason = backend_class(name).unavailable_reason()
    assert reason is not None and f"cannot import {package}" in reason and "install" in reason
    with pytest.raises(BackendUnavailable, match=package):
        get_backend(name)


@pytest.mark.skipif(torch.version.cuda is not None or torch.version.hip is not None, reason="a GPU build of torch")
def test_cuda_on_a_cpu_only_torch_says_so() -> None:
    assert "CPU-only build" in (CudaBackend.unavailable_reason() or "")


def test_cuda_driver_error_and_no_device(monkeypatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", "12.4")

    def broken() -> int:
        raise RuntimeError("CUDA driver initialization failed")

    monkeypatch.setattr(torch.cuda, "device_count", broken)
    assert "driver failed to initialise (RuntimeError: CUDA driver initialization failed)" in CudaBackend.unavailable_reason()
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert CudaBackend.unavailable_reason() == "backend 'cuda': no device visible (CUDA_VISIBLE_DEVICES='')"
    assert not CudaBackend.is_available()


# -- torch.cuda families: inventory from fake device properties -----------------------------------


def fake_props(name: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(name=name, major=9, minor=0, total_memory=64 * 2**30, multi_processor_count=120,
                                 uuid="1ac807aa-cbcd-5579-8591-d59d436d6eca", gcnArchName="gfx90a")


@pytest.mark.parametrize(("name", "hip", "vendor", "domestic", "unit", "dies"), [
    ("K100_AI", "6.2", "hygon", True, "card", 1),
    ("AMD Instinct MI250X", "6.2", "amd", False, "die", 2),
    ("MetaX C500", None, "metax", True, "card", 1),
    ("Iluvatar MR-V100", None, "iluvatar", True, "card", 1),
    ("P800 OAM", None, "kunlunxin", True, "card", 1),
])
def test_cuda_inventory_names_the_vendor(monkeypatch, name, hip, vendor, domestic, unit, dies) -> None:
    monkeypatch.setattr(torch.version, "hip", hip)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: fake_props(name))
    import icb_bench.kernels.backends.cuda as cuda_mod

    monkeypatch.setattr(cuda_mod, "_nvml_details", lambda uuid: pytest.fail("NVML asked about a non-NVIDIA part"))
    info = CudaBackend().device_info(0)
    assert (info.vendor, info.domestic, info.unit, info.dies_per_card) == (vendor, domestic, unit, dies)
    assert info.extra["vendor_rule"] and info.extra["die_layout"]


# -- plugin fakes -------------------------------------------------------------------------------


def install_plugin(monkeypatch, package: str, device_type: str, name: str, **namespaces) -> types.SimpleNamespace:
    module, runtime = make_fake_npu()
    runtime.get_device_name = lambda index=None: name
    fake = types.ModuleType(package)
    fake.__version__ = "1.0.fake"
    monkeypatch.setitem(sys.modules, package, fake)
    monkeypatch.setattr(torch, device_type, runtime, raising=False)
    for path, value in namespaces.items():
        monkeypatch.setattr(torch.backends, path, value, raising=False)
    return runtime


def test_mlu_fake_flags_and_inventory(monkeypatch) -> None:
    mlu_matmul = types.SimpleNamespace(allow_tf32=True)  # left on by someone: fp32 must switch it off
    install_plugin(monkeypatch, "torch_mlu", "mlu", "MLU370-X8", mlu=types.SimpleNamespace(matmul=mlu_matmul))
    backend = get_backend("mlu")
    with backend.numeric_mode("fp32") as flags:
        assert flags["mlu.matmul.allow_tf32"] is False and mlu_matmul.allow_tf32 is False
        assert flags["cnnl.allow_tf32"] == "absent"  # recorded as not set, not silently skipped
    assert mlu_matmul.allow_tf32 is True
    with backend.numeric_mode("tf32") as flags:
        assert flags["mlu.matmul.allow_tf32"] is True
    info = backend.device_info(0)
    assert (info.vendor, info.domestic, info.unit, info.runtime_version) == ("cambricon", True, "card", "1.0.fake")


def test_musa_fake_events_synchronize_and_inventory(monkeypatch) -> None:
    runtime = install_plugin(monkeypatch, "torch_musa", "musa", "MTT S4000")
    backend = get_backend("musa")
    backend.synchronize(1)
    assert runtime.calls == ["sync1"]
    timer = backend.timer(0)
    timer.start()
    timer.stop()
    assert timer.elapsed_ms() >= 0 and timer.api == "plugin Event" and timer._start.streams == ["stream0"]
    info = backend.device_info(0)
    assert (info.model, info.vendor, info.domestic, info.extra["api"]) == ("MTT S4000", "moorethreads", True, "torch.musa")


def test_npu_hf32_switches_all_documented_flags(monkeypatch) -> None:
    module, runtime = make_fake_npu()
    # documented defaults: matmul False, conv True, aclnn True
    module.npu.conv = types.SimpleNamespace(allow_hf32=True)
    module.npu.aclnn = types.SimpleNamespace(allow_hf32=True)
    monkeypatch.setitem(sys.modules, "torch_npu", module)
    monkeypatch.setattr(torch, "npu", runtime, raising=False)
    backend = get_backend("npu")
    with backend.numeric_mode("fp32") as flags:
        assert [flags[f"torch_npu.npu.{ns}.allow_hf32"] for ns in ("matmul", "conv", "aclnn")] == [False, False, False]
    assert (module.npu.matmul.allow_hf32, module.npu.conv.allow_hf32, module.npu.aclnn.allow_hf32) == (False, True, True)
    with backend.numeric_mode("tf32") as flags:
        assert flags["torch_npu.npu.conv.allow_hf32"] is True and module.npu.matmul.allow_hf32 is True
    del module.npu.aclnn  # an older torch_npu without the aclnn switch
    with backend.numeric_mode("fp32") as flags:
        assert flags["torch_npu.npu.aclnn.allow_hf32"] == "absent"


def test_npu_910_93_is_one_die_of_two(monkeypatch) -> None:
    install_plugin(monkeypatch, "torch_npu", "npu", "Ascend910_9391")
    info = get_backend("npu").device_info(0)
    assert (info.unit, info.dies_per_card) == ("die", 2) and "910_93" in info.extra["die_layout"]


def test_device_generic_api_is_preferred_when_torch_drives_the_device(monkeypatch) -> None:
    runtime = install_plugin(monkeypatch, "torch_npu", "npu", "Ascend910B3")
    acc_calls: list[str] = []
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda *a, **k: types.SimpleNamespace(type="npu"))
    monkeypatch.setattr(torch.accelerator, "synchronize", lambda index=None: acc_calls.append(f"acc-sync{index}"))
    monkeypatch.setattr(torch.accelerator, "current_stream", lambda index=None: f"acc-stream{index}")
    monkeypatch.setattr(torch, "Event", lambda device=None, enable_timing=False: FakeEvent(enable_timing))
    backend = get_backend("npu")
    monkeypatch.setattr(backend, "device", lambda index: torch.device("cpu"))
    backend.synchronize(1)
    assert acc_calls == ["acc-sync1"] and runtime.calls == []  # not torch.npu.synchronize
    timer = backend.timer(1)
    timer.start()
    timer.stop()
    assert timer.api == "torch.Event" and timer._start.streams == ["acc-stream1"] and timer.elapsed_ms() >= 0
    assert backend.device_info(0).extra["api"] == "torch.accelerator"
