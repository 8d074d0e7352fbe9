"""Backend registry, CPU backend details and the torch numeric-mode switch."""

from __future__ import annotations

import sys

import pytest
import torch

from icb_bench.kernels.backends import (
    BACKEND_NAMES,
    DETECT_ORDER,
    REGISTRY,
    backend_class,
    detect_backend,
    get_backend,
)
from icb_bench.kernels.backends import cpu as cpu_mod
from icb_bench.kernels.backends._torch_flags import read_torch_flags
from icb_bench.kernels.backends.base import Backend
from icb_bench.kernels.backends.cpu import CPU_DEVICES_ENV, CpuBackend, cpu_vendor_model
from icb_bench.kernels.backends.cuda import CudaBackend, cuda_vendor
from icb_bench.kernels.errors import BackendUnavailable, DeviceError, KernelError, OutOfMemory


def test_registry_names() -> None:
    assert set(BACKEND_NAMES) == {"cpu", "cuda", "npu", "mlu", "musa", "xpu"}
    assert "cpu" not in DETECT_ORDER and set(DETECT_ORDER) | {"cpu"} == set(BACKEND_NAMES)
    for name in BACKEND_NAMES:
        cls = backend_class(name)  # every module imports without its vendor library
        assert issubclass(cls, Backend) and cls.name == name
        assert ":" in REGISTRY[name]


def test_unknown_backend() -> None:
    with pytest.raises(BackendUnavailable, match="unknown backend 'tpu'.*cpu"):
        get_backend("tpu")


def test_missing_plugin_names_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_npu", None)  # import torch_npu -> ImportError
    with pytest.raises(BackendUnavailable, match="torch_npu") as info:
        get_backend("npu")
    assert "install" in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="machine has CUDA")
def test_cuda_unavailable_without_gpu() -> None:
    assert not CudaBackend.is_available()
    with pytest.raises(BackendUnavailable, match="cuda"):
        get_backend("cuda")


def test_detect_backend_falls_back_to_cpu(monkeypatch) -> None:
    for name in DETECT_ORDER:
        monkeypatch.setattr(backend_class(name), "is_available", classmethod(lambda cls: False))
    assert detect_backend() == "cpu"


def test_detect_backend_order(monkeypatch) -> None:
    for name in DETECT_ORDER:
        available = name in ("mlu", "xpu")
        monkeypatch.setattr(
            backend_class(name), "is_available", classmethod(lambda cls, a=available: a)
        )
    assert detect_backend() == "mlu"


def test_cpu_device_count_env(monkeypatch) -> None:
    backend = get_backend("cpu")
    monkeypatch.delenv(CPU_DEVICES_ENV, raising=False)
    assert backend.device_count() == 1
    monkeypatch.setenv(CPU_DEVICES_ENV, "3")
    assert backend.device_count() == 3
    free3, total3 = backend.memory_info(2)
    monkeypatch.setenv(CPU_DEVICES_ENV, "1")
    free1, total1 = backend.memory_info(0)
    assert total3 == pytest.approx(total1 / 3, rel=0.01)
    monkeypatch.setenv(CPU_DEVICES_ENV, "0")
    with pytest.raises(BackendUnavailable, match="must be at least 1"):
        backend.device_count()
    monkeypatch.setenv(CPU_DEVICES_ENV, "x")
    with pytest.raises(BackendUnavailable, match="is not an integer"):
        backend.device_count()


def test_cpu_index_out_of_range(cpu) -> None:
    with pytest.raises(IndexError):
        cpu.device(1)


def test_cpu_configure_worker(monkeypatch) -> None:
    backend = CpuBackend()
    before = torch.get_num_threads()
    monkeypatch.setattr(cpu_mod, "host_threads", lambda: 8)
    try:
        backend.configure_worker(0, 4)
        assert torch.get_num_threads() == 2
        backend.configure_worker(0, 16)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_cpu_device_info(cpu) -> None:
    info = cpu.device_info(0)
    assert info.backend == "cpu" and info.index == 0
    assert info.model and info.vendor
    assert info.memory_total_bytes and info.memory_total_bytes > 0
    assert info.compute_units and info.compute_units >= 1
    free, total = cpu.memory_info(0)
    assert 0 < free <= total


def test_cpuinfo_vendors(tmp_path) -> None:
    hygon = tmp_path / "cpuinfo"
    hygon.write_text(
        "processor\t: 0\nvendor_id\t: HygonGenuine\nmodel name\t: Hygon C86 7285 32-core Processor\n\n"
        "processor\t: 1\nvendor_id\t: HygonGenuine\n"
    )
    fields = cpu_mod._read_cpuinfo(str(hygon))
    assert cpu_vendor_model(fields) == ("hygon", True, "Hygon C86 7285 32-core Processor")
    assert cpu_vendor_model({"vendor_id": "AuthenticAMD", "model name": "AMD EPYC 9654"})[:2] == ("amd", False)
    assert cpu_vendor_model({"vendor_id": "GenuineIntel", "model name": "x"})[:2] == ("intel", False)
    vendor, domestic, model = cpu_vendor_model({"CPU implementer": "0x48", "CPU part": "0xd01"})
    assert (vendor, domestic) == ("huawei", True) and "0xd01" in model


def test_meminfo_parse(tmp_path) -> None:
    f = tmp_path / "meminfo"
    f.write_text("MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    600 kB\n")
    assert cpu_mod._read_meminfo(str(f)) == (600 * 1024, 1000 * 1024)
    assert cpu_mod._read_meminfo(str(tmp_path / "absent")) is None


def test_cuda_vendor_from_name() -> None:
    assert cuda_vendor("NVIDIA H100 80GB HBM3", hip=False) == ("nvidia", False)
    assert cuda_vendor("AMD Instinct MI300X", hip=True) == ("amd", False)
    assert cuda_vendor("K100_AI", hip=True) == ("hygon", True)
    assert cuda_vendor("DCU Z100L", hip=True) == ("hygon", True)
    assert cuda_vendor("Iluvatar BI-V150", hip=False) == ("iluvatar", True)
    assert cuda_vendor("MetaX C500", hip=False) == ("metax", True)
    assert cuda_vendor("Kunlunxin P800", hip=False) == ("kunlunxin", True)
    assert cuda_vendor("NVIDIA A800 80GB PCIe", hip=False) == ("nvidia", False)


def test_translate_error(cpu) -> None:
    assert isinstance(cpu.translate_error(RuntimeError("CUDA out of memory. Tried")), OutOfMemory)
    assert isinstance(cpu.translate_error(MemoryError()), OutOfMemory)
    err = cpu.translate_error(RuntimeError("illegal memory access"))
    assert isinstance(err, DeviceError) and not isinstance(err, OutOfMemory)
    assert isinstance(cpu.translate_error(ImportError("x")), BackendUnavailable)
    original = KernelError("mine")
    assert cpu.translate_error(original) is original


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16", "fp8", "int8"])
def test_numeric_mode_ieee_and_restore(cpu, dtype: str) -> None:
    torch.set_float32_matmul_precision("high")  # a caller left TF32 on
    try:
        with cpu.numeric_mode(dtype) as flags:
            assert flags["float32_matmul_precision"] == "highest"
            assert flags["cuda.matmul.allow_tf32"] is False
            assert flags["cudnn.allow_tf32"] is False
            assert flags["cuda.matmul.allow_fp16_reduced_precision_reduction"] is False
            assert flags["cuda.matmul.allow_bf16_reduced_precision_reduction"] is False
            if "cuda.matmul.fp32_precision" in flags:
                assert flags["cuda.matmul.fp32_precision"] == "ieee"
            assert read_torch_flags() == flags
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision("highest")


def test_numeric_mode_tf32(cpu) -> None:
    cudnn_before = torch.backends.cudnn.allow_tf32
    with cpu.numeric_mode("tf32") as flags:
        assert flags["float32_matmul_precision"] == "high"
        assert flags["cuda.matmul.allow_tf32"] is True
        # nested fp32 inside tf32 is IEEE, and tf32 comes back after
        with cpu.numeric_mode("fp32") as inner:
            assert inner["cuda.matmul.allow_tf32"] is False
        assert torch.backends.cuda.matmul.allow_tf32 is True
    assert torch.backends.cuda.matmul.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 == cudnn_before


def test_numeric_mode_survives_new_api_state(cpu) -> None:
    """torch >= 2.9 raises when the legacy and new TF32 APIs disagree; our mode must still set a
    consistent IEEE state and read it back."""
    matmul = torch.backends.cuda.matmul
    if not hasattr(torch.backends, "fp32_precision"):
        pytest.skip("torch without the fp32_precision API")
    matmul.fp32_precision = "tf32"  # new API only: the legacy getter now refuses to answer
    try:
        with cpu.numeric_mode("fp32") as flags:
            assert flags["cuda.matmul.allow_tf32"] is False
            assert flags["cuda.matmul.fp32_precision"] == "ieee"
    finally:
        torch.set_float32_matmul_precision("highest")
    assert torch.backends.cuda.matmul.allow_tf32 is False


def test_device_info_domestic_from_backend_or_vendor_table() -> None:
    from icb_bench.kernels.backends.base import DeviceInfo

    assert DeviceInfo(0, "x", "Ascend910B3", "huawei").domestic is True  # vendor table
    assert DeviceInfo(0, "x", "H100", "nvidia").domestic is False
    assert DeviceInfo(0, "x", "K100_AI", "amd", extra={"domestic": True}).domestic is True  # the backend's word wins
    assert DeviceInfo(0, "x", "Ascend910B3", "huawei", extra={"domestic": False}).domestic is False


def test_cpu_domestic_is_decided_by_the_one_vendor_table(monkeypatch):
    """The CPU backend names the vendor only; DeviceInfo.domestic decides from DOMESTIC_VENDORS."""
    from icb_bench.kernels.backends.base import DOMESTIC_VENDORS

    for vendor_id, vendor in (("HygonGenuine", "hygon"), ("GenuineIntel", "intel")):
        monkeypatch.setattr(cpu_mod, "_read_cpuinfo", lambda *a, _v=vendor_id: {"vendor_id": _v, "model name": "x"})
        info = CpuBackend().device_info(0)
        assert info.vendor == vendor and "domestic" not in info.extra
        assert info.domestic is (vendor in DOMESTIC_VENDORS)
