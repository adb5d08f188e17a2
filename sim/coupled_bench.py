"""A simulated bench whose parts interact, served over real transports (docs/hil.md §3).

pyvisa-sim instruments cannot influence each other. Here they do:

- the laser's emitted power and wavelength set the light reaching the chip's detectors,
  through a grating coupler with a Gaussian passband;
- the TEC's measured temperature (first order, time constant ``tau_s`` on a simulated clock
  that runs ``speed`` times faster than the wall clock) is the chip's temperature;
- the power meter reads the chip's optical output, through its MZIs' wavelength response and
  the output coupler (docs/physics.md, "Passband");
- with ``chip_bypassed`` (a patch cord in the chip's place, moved by hand: no instrument
  setting) the meter reads the laser's emitted light itself and the chip is dark: the
  reference path of a referenced spectrum (docs/instrument-sim.md, "Reference path").

The chip is the FPGA firmware emulator on TCP (``fpga+tcp://``); the instruments are the SCPI
models on TCP (``visa://TCPIP::127.0.0.1::PORT::SOCKET?...&backend=@py``). So the real drivers
run unchanged, through pyserial's socket code and pyvisa-py.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from lumina_hal.sim.fpga.faults import FaultInjector, FaultRates
from lumina_hal.sim.fpga.firmware import FirmwareEmulator
from lumina_hal.sim.fpga.server import TcpServer
from lumina_hal.sim.scpi.keysight8164b import Keysight8164B
from lumina_hal.sim.scpi.params import dbm_to_watts
from lumina_hal.sim.scpi.pm100d import ThorlabsPm100d
from lumina_hal.sim.scpi.server import ScpiTcpServer
from lumina_hal.sim.scpi.ted4015 import ThorlabsTed4015
from lumina_hal.sim.scpi.tsl570 import SantecTsl570
from lumina_hal.twin.passband import coupler_passband_db, mzi_passband_db

log = logging.getLogger(__name__)

#: The lasers a coupled bench can have (simulator model names).
LASERS = (SantecTsl570.model, Keysight8164B.model)
#: The chip's optical power per detector when no light reaches it (the physics minimum).
DARK_DBM = -60.0


@dataclass(frozen=True)
class Coupling:
    """How light gets from the laser to the detectors and out to the meter (dB, nm).

    Per-detector power P_det = P_laser − input_loss_db + G(λ), and the meter sees
    P_meter = P_chip_out − output_loss_db + G(λ), with the coupler passband
    G(λ) = −10·log10(e)·4·ln2·((λ − center_nm)/fwhm_nm)² dB (a Gaussian, −3.01 dB at ±fwhm/2).
    With the laser at 10 dBm and 1550 nm the chip sees the ``typical`` preset's 0 dBm.
    """

    input_loss_db: float = 10.0  # coupler + fan-out to the detectors
    output_loss_db: float = 3.0
    center_nm: float = 1550.0
    fwhm_nm: float = 40.0

    def passband_db(self, wavelength_nm: float) -> float:
        return coupler_passband_db(wavelength_nm, self.center_nm, self.fwhm_nm)

    def detector_dbm(self, laser_dbm: float | None, wavelength_nm: float) -> float:
        if laser_dbm is None:
            return DARK_DBM
        level = laser_dbm - self.input_loss_db + self.passband_db(wavelength_nm)
        return min(max(level, DARK_DBM), 30.0)

    def meter_w(self, chip_out_dbm: float | None, wavelength_nm: float) -> float:
        if chip_out_dbm is None:
            return 0.0
        dbm = chip_out_dbm - self.output_loss_db + self.passband_db(wavelength_nm)
        return 1e-3 * 10.0 ** (dbm / 10.0)


class ScaledClock:
    """Simulated seconds: ``speed`` × wall-clock seconds since creation."""

    def __init__(self, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self._start = time.monotonic()

    def __call__(self) -> float:
        return (time.monotonic() - self._start) * self.speed


class _CoupledMeter(ThorlabsPm100d):
    """A PM100D whose optical input is the chip's output (computed when read)."""

    def __init__(self, source: Any, **kwargs: Any) -> None:
        self._source = source
        super().__init__(**kwargs)

    @property
    def input_power_w(self) -> float:
        return float(self._source())

    @input_power_w.setter
    def input_power_w(self, value: float) -> None:
        pass  # the coupling decides; the base class's reset writes 0 here


class CoupledBench:
    """The chip emulator and the three instruments on loopback TCP, coupled.

    ``with CoupledBench() as sim: lumina_hal.open_bench(sim.write_bench(path))``.
    """

    def __init__(
        self,
        chip: dict[str, Any] | None = None,
        *,
        speed: float = 100.0,
        tau_s: float = 10.0,
        ambient_c: float = 25.0,
        coupling: Coupling | None = None,
        seed: int = 1,
        laser: str = "santec-tsl570",
    ) -> None:
        self.chip_params: dict[str, Any] = {
            "rows": 16, "cols": 16, "preset": "typical", "seed": seed,
        }  # fmt: skip
        self.chip_params.update(chip or {})
        self.coupling = coupling or Coupling()
        self.clock = ScaledClock(speed)
        if laser not in LASERS:
            raise ValueError(f"laser must be one of {sorted(LASERS)}, got {laser!r}")
        self.laser: SantecTsl570 | Keysight8164B = (
            SantecTsl570(clock=self.clock, seed=seed)
            if laser == SantecTsl570.model
            else Keysight8164B(clock=self.clock)
        )
        self.tec = ThorlabsTed4015(clock=self.clock, tau_s=tau_s, ambient_c=ambient_c)
        self.meter = _CoupledMeter(self._meter_input_w, clock=self.clock, seed=seed + 1)
        for model in (self.laser, self.tec, self.meter):
            model.time_scale = 1.0 / speed  # work (tuning, averaging) runs as fast as the clock
        self.emulator = FirmwareEmulator(**self.chip_params)
        self.emulator.environment = self._chip_environment
        self._lock = threading.Lock()
        self._servers: list[Any] = []
        #: The reference path: laser fibre straight to the meter (lossless patch cord).
        self.chip_bypassed = False

    # --- coupling ------------------------------------------------------------------------------
    def _light(self) -> tuple[float | None, float]:
        with self.laser.lock:
            return self.laser.emitted_power_dbm, self.laser.emitted_wavelength_nm

    def _chip_light(self) -> tuple[float | None, float]:
        """The laser's light at the chip's input: none while the chip is bypassed."""
        laser_dbm, wavelength_nm = self._light()
        return (None if self.chip_bypassed else laser_dbm), wavelength_nm

    def _chip_environment(self) -> tuple[float, float]:
        laser_dbm, wavelength_nm = self._chip_light()
        with self.tec.lock:
            temperature_c = self.tec.temperature_c
        return temperature_c, self.coupling.detector_dbm(laser_dbm, wavelength_nm)

    def chip_output_dbm(self) -> float | None:
        """Optical power leaving the chip towards the meter (dBm); None if dark."""
        laser_dbm, wavelength_nm = self._chip_light()
        if laser_dbm is None:
            return None
        return self.chip_output_dbm_at(laser_dbm, wavelength_nm)

    def chip_output_dbm_at(self, laser_dbm: float, wavelength_nm: float) -> float:
        """The chip's output (dBm) for light of ``laser_dbm`` at ``wavelength_nm``: its
        telemetry power at the calibration wavelength plus the MZIs' passband M(λ)."""
        chip = self.emulator.chip
        detector_dbm = self.coupling.detector_dbm(laser_dbm, wavelength_nm)
        mzi_db = mzi_passband_db(
            wavelength_nm, chip.physics.wavelength_nm, chip.physics.arm_imbalance_um
        )
        return chip.optical_output_dbm(laser_power_dbm=detector_dbm) + mzi_db

    def _meter_input_w(self) -> float:
        laser_dbm, wavelength_nm = self._light()
        if self.chip_bypassed:
            return 0.0 if laser_dbm is None else dbm_to_watts(laser_dbm)
        return self.coupling.meter_w(self.chip_output_dbm(), wavelength_nm)

    # --- serving -------------------------------------------------------------------------------
    def start(self) -> CoupledBench:
        no_faults = FaultInjector(FaultRates())
        self.chip_server = TcpServer(self.emulator, no_faults).start()
        self.laser_server = ScpiTcpServer(self.laser).start()
        self.tec_server = ScpiTcpServer(self.tec).start()
        self.meter_server = ScpiTcpServer(self.meter).start()
        self._servers = [self.chip_server, self.laser_server, self.tec_server, self.meter_server]
        log.info("coupled bench serving: %s", self.uris())
        return self

    def close(self) -> None:
        for server in self._servers:
            server.close()
        self._servers = []

    def __enter__(self) -> CoupledBench:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def uris(self) -> dict[str, str]:
        host, port = self.chip_server.address
        return {
            "chip": f"fpga+tcp://{host}:{port}",
            "laser": f"visa://{self.laser_server.resource}?model={self.laser.model}&backend=@py",
            "power_meter": (
                f"visa://{self.meter_server.resource}?model=thorlabs-pm100d&backend=@py"
            ),
            "tec": f"visa://{self.tec_server.resource}?model=thorlabs-ted4015&backend=@py",
        }

    def bench_toml(self) -> str:
        """A bench file for these servers, with the simulated bench's limits and safe states."""
        u = self.uris()
        return (
            "# Coupled simulated bench (lumina_hal.sim.coupled_bench); valid while it runs.\n"
            f'[chip]\nuri = "{u["chip"]}"\n\n'
            f'[laser]\nuri = "{u["laser"]}"\nmax_power_dbm = 13.0\n'
            'safe_state = "off"\n\n'
            f'[power_meter]\nuri = "{u["power_meter"]}"\n\n'
            f'[tec]\nuri = "{u["tec"]}"\nmin_c = 15.0\nmax_c = 85.0\nmax_step_c = 10.0\n'
            'step_interval_s = 0.01\nsafe_state = "setpoint"\nsafe_setpoint_c = 25.0\n'
        )

    def write_bench(self, path: str | Path) -> Path:
        target = Path(path)
        target.write_text(self.bench_toml(), encoding="utf-8")
        return target
