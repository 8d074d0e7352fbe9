"""Fakes for the power tests: a fake ``pynvml`` module and a scripted reader."""

from __future__ import annotations

import time
import types
from dataclasses import dataclass, field
from typing import Any, Callable

from icb_bench.bench.power.base import PowerReader, PowerSample


@dataclass
class FakeGpu:
    """One simulated GPU. The energy counter integrates ``counter_power_w`` exactly."""

    uuid: str
    pci_bus_id: str
    counter_power_w: float = 300.0
    reported_power_w: float | None = None  # what the power calls return (defaults to counter power)
    energy_supported: bool = True
    instant_supported: bool = True
    throttle: int = 0
    serial: str | None = "1324"
    sm_clock_mhz: int = 1980
    mem_clock_mhz: int = 2619
    temperature_c: int = 61
    power_limit_mw: int = 700_000
    power_limit_default_mw: int = 700_000
    power_limit_range_mw: tuple[int, int] = (200_000, 700_000)
    fail_power: Exception | None = None  # raised by the power calls when set
    fail_energy: Exception | None = None  # raised by the energy call when set
    t0: float = field(default_factory=time.monotonic)

    def energy_mj(self) -> int:
        return int(5_000_000 + self.counter_power_w * (time.monotonic() - self.t0) * 1000.0)

    def power_mw(self) -> int:
        p = self.counter_power_w if self.reported_power_w is None else self.reported_power_w
        return int(round(p * 1000))


def make_fake_pynvml(gpus: list[FakeGpu], *, init_error: str | None = None, old_bindings: bool = False) -> types.ModuleType:
    """A module with the pynvml calls NvmlReader uses, over ``gpus``."""
    m = types.ModuleType("pynvml")

    class NVMLError(Exception):
        def __init__(self, value: int = 999) -> None:
            super().__init__(value)
            self.value = value

        def __str__(self) -> str:
            return f"fake NVML error {self.value}"

    def sub(name: str, code: int) -> type:
        return type(name, (NVMLError,), {"__init__": lambda self, value=code: NVMLError.__init__(self, value)})

    m.NVMLError = NVMLError
    m.NVMLError_Uninitialized = sub("NVMLError_Uninitialized", 1)
    m.NVMLError_NotSupported = sub("NVMLError_NotSupported", 3)
    m.NVMLError_NotFound = sub("NVMLError_NotFound", 6)
    m.NVMLError_LibraryNotFound = sub("NVMLError_LibraryNotFound", 12)
    m.NVMLError_GpuIsLost = sub("NVMLError_GpuIsLost", 15)
    m.NVML_SUCCESS = 0
    m.NVML_ERROR_NOT_SUPPORTED = 3
    m.NVML_CLOCK_SM = 1
    m.NVML_CLOCK_MEM = 2
    m.NVML_TEMPERATURE_GPU = 0
    m.NVML_FI_DEV_POWER_INSTANT = 186
    m.calls = {"init": 0, "shutdown": 0}
    m.live = 0  # nvmlInit minus nvmlShutdown: calls other than init must see > 0

    def need_init() -> None:
        if m.live <= 0:
            raise m.NVMLError_Uninitialized()

    def nvmlInit() -> None:
        if init_error:
            raise getattr(m, init_error)()
        m.calls["init"] += 1
        m.live += 1

    def nvmlShutdown() -> None:
        need_init()
        m.calls["shutdown"] += 1
        m.live -= 1

    def by_index(i: int) -> FakeGpu:
        need_init()
        if not 0 <= i < len(gpus):
            raise m.NVMLError_NotFound()
        return gpus[i]

    def by_uuid(u: str) -> FakeGpu:
        need_init()
        for g in gpus:
            if g.uuid == u:
                return g
        raise m.NVMLError_NotFound()

    def by_pci(b: str) -> FakeGpu:
        need_init()
        for g in gpus:
            if g.pci_bus_id.lower() == b.lower():
                return g
        raise m.NVMLError_NotFound()

    def energy(g: FakeGpu) -> int:
        need_init()
        if not g.energy_supported:
            raise m.NVMLError_NotSupported()
        if g.fail_energy is not None:
            raise g.fail_energy
        return g.energy_mj()

    def power_usage(g: FakeGpu) -> int:
        need_init()
        if g.fail_power is not None:
            raise g.fail_power
        return g.power_mw()

    def field_values(g: FakeGpu, ids: list[int]) -> list[Any]:
        need_init()
        if g.fail_power is not None:
            raise g.fail_power
        out = []
        for fid in ids:
            ok = fid == 186 and g.instant_supported
            out.append(
                types.SimpleNamespace(
                    fieldId=fid,
                    nvmlReturn=0 if ok else 3,
                    valueType=1,
                    value=types.SimpleNamespace(uiVal=g.power_mw() if ok else 0),
                )
            )
        return out

    def serial(g: FakeGpu) -> str:
        if g.serial is None:
            raise m.NVMLError_NotSupported()
        return g.serial

    def clock(g: FakeGpu, which: int) -> int:
        return g.sm_clock_mhz if which == 1 else g.mem_clock_mhz

    m.nvmlInit = nvmlInit
    m.nvmlShutdown = nvmlShutdown
    m.nvmlDeviceGetHandleByIndex = by_index
    m.nvmlDeviceGetHandleByUUID = by_uuid
    m.nvmlDeviceGetHandleByPciBusId = by_pci
    m.nvmlDeviceGetTotalEnergyConsumption = energy
    m.nvmlDeviceGetPowerUsage = power_usage
    m.nvmlDeviceGetFieldValues = field_values
    m.nvmlDeviceGetClockInfo = clock
    m.nvmlDeviceGetTemperature = lambda g, which: g.temperature_c
    m.nvmlDeviceGetEnforcedPowerLimit = lambda g: g.power_limit_mw
    m.nvmlDeviceGetPowerManagementLimit = lambda g: g.power_limit_mw
    m.nvmlDeviceGetPowerManagementDefaultLimit = lambda g: g.power_limit_default_mw
    m.nvmlDeviceGetPowerManagementLimitConstraints = lambda g: list(g.power_limit_range_mw)
    if old_bindings:
        m.nvmlDeviceGetCurrentClocksThrottleReasons = lambda g: g.throttle
    else:
        m.nvmlDeviceGetCurrentClocksEventReasons = lambda g: g.throttle
    m.nvmlDeviceGetName = lambda g: b"NVIDIA H100 80GB HBM3"
    m.nvmlDeviceGetUUID = lambda g: g.uuid.encode()
    m.nvmlDeviceGetSerial = serial
    m.nvmlDeviceGetPciInfo = lambda g: types.SimpleNamespace(busId=g.pci_bus_id.encode())
    m.nvmlSystemGetDriverVersion = lambda: "550.54.15"
    m.nvmlSystemGetNVMLVersion = lambda: "12.550.54.15"
    return m


class FakeReader(PowerReader):
    """A reader with a power given as a function of time and an optional exact counter."""

    name = "fake"
    energy_source = "fake:counter"
    power_source = "fake:power"

    def __init__(self, power_fn: Callable[[float], float] = lambda t: 100.0, *, counter: bool = False, throttle: int = 0) -> None:
        self.power_fn = power_fn
        self.counter = counter
        self.throttle = throttle
        self.t0 = time.monotonic()
        self.n_samples = 0

    @property
    def has_energy_counter(self) -> bool:
        return self.counter

    def energy_j(self) -> float | None:
        if not self.counter:
            return None
        # exact for a constant power function
        return self.power_fn(0.0) * (time.monotonic() - self.t0)

    def sample(self) -> PowerSample:
        self.n_samples += 1
        t = time.monotonic()
        return PowerSample(t_s=t, power_w=self.power_fn(t - self.t0), throttle_reasons=self.throttle)

    def decode_throttle(self, reasons: int | None) -> list[str]:
        return ["Busy"] if reasons else []
