"""A bench file names the chip and the instruments, their soft limits and safe states.

``open_bench("bench.toml")`` opens everything and returns a :class:`Bench`; leaving
``with bench:`` — normally, on an exception, on Ctrl-C or on SIGTERM — puts the laser off and
the TEC in its safe state before anything is closed. Format and rules: docs/instruments.md §5–6.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from lumina_hal.bench.exits import SigtermUnwinds
from lumina_hal.bench.limits import LaserLimits, Limits, TecLimits
from lumina_hal.bench.roles import Instrument, Laser, PowerMeter, TemperatureController
from lumina_hal.bench.spectra import (
    SPECTRUM_TABLE,
    Spectrum,
    check_reference_grid,
    swept_transmission,
    wavelength_grid,
)
from lumina_hal.device import PhotonicDevice
from lumina_hal.errors import ConfigurationError, LuminaError, SafetyLimitError
from lumina_hal.package_data import packaged_sim_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

BENCH_ENV = "LUMINA_BENCH"
SIMULATED_BENCH = "bench.toml"  # shipped in lumina_hal.sim

#: Keys allowed in each section; the order is the order parts are made safe and closed.
_SECTIONS: dict[str, tuple[str, ...]] = {
    "laser": ("uri", *LaserLimits.keys(), "safe_state"),  # safe_state: always "off"
    "tec": ("uri", *TecLimits.keys()),
    "power_meter": ("uri",),
    "chip": ("uri",),
}
_ROLES: dict[str, Any] = {  # role name -> its ABC (abstract: used for isinstance checks)
    "laser": Laser,
    "tec": TemperatureController,
    "power_meter": PowerMeter,
}
#: Environment variables that override a section's URI (first match wins).
URI_ENV: dict[str, tuple[str, ...]] = {
    "chip": ("LUMINA_CHIP", "LUMINA_DEVICE"),
    "laser": ("LUMINA_LASER",),
    "power_meter": ("LUMINA_POWER_METER",),
    "tec": ("LUMINA_TEC",),
}


@dataclass(frozen=True)
class BenchConfig:
    """A validated bench file: URIs per part and the soft limits."""

    path: Path | None
    uris: dict[str, str]
    laser_limits: LaserLimits = field(default_factory=LaserLimits)
    tec_limits: TecLimits = field(default_factory=TecLimits)


def load_bench_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> BenchConfig:
    """Read and check a bench file (default: $LUMINA_BENCH, else the simulated bench)."""
    env = os.environ if environ is None else environ
    file = _bench_path(path, env)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"bench file {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:  # a folder, no permission, not text
        raise ConfigurationError(f"bench file {file} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"bench file {file} is not valid TOML: {exc}") from None
    return parse_bench_config(data, file, env)


def _bench_path(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    if path is None:
        path = env.get(BENCH_ENV, "").strip() or None
    if path is None:
        return packaged_sim_file(SIMULATED_BENCH)
    return Path(path)


def parse_bench_config(
    data: Mapping[str, Any], file: Path | None, environ: Mapping[str, str]
) -> BenchConfig:
    where = str(file) if file else "bench"
    for section, body in data.items():
        if section not in _SECTIONS:
            raise _unknown(section, _SECTIONS, f"{where}: unknown section [{section}]")
        if not isinstance(body, Mapping):
            raise ConfigurationError(f"{where}: [{section}] must be a table")
        for key in body:
            if key not in _SECTIONS[section]:
                raise _unknown(key, _SECTIONS[section], f"{where} [{section}]: unknown key {key!r}")
    uris: dict[str, str] = {}
    for section in _SECTIONS:
        uri = _env_uri(section, environ) or data.get(section, {}).get("uri")
        if section in data and not uri:
            raise ConfigurationError(f"{where} [{section}]: 'uri' is missing")
        if uri:
            if not isinstance(uri, str):
                raise ConfigurationError(f"{where} [{section}]: 'uri' must be a string")
            uris[section] = _resolve_sim_path(uri, file)
    if not uris:
        raise ConfigurationError(f"{where}: names no chip and no instrument")
    laser = {k: v for k, v in data.get("laser", {}).items() if k != "uri"}
    tec = {k: v for k, v in data.get("tec", {}).items() if k != "uri"}
    if laser.pop("safe_state", "off") != "off":
        raise ConfigurationError(f"{where} [laser]: safe_state can only be 'off'")
    laser_limits = LaserLimits.from_mapping(laser, f"{where} [laser]")
    tec_limits = TecLimits.from_mapping(tec, f"{where} [tec]")
    return BenchConfig(file, uris, laser_limits, tec_limits)


def _unknown(name: str, valid: Any, message: str) -> ConfigurationError:
    hint = difflib.get_close_matches(name, list(valid), n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    return ConfigurationError(f"{message}{suggestion}; valid: {', '.join(valid)}")


def _env_uri(section: str, environ: Mapping[str, str]) -> str | None:
    for name in URI_ENV[section]:
        value = environ.get(name, "").strip()
        if value:
            log.info("bench %s URI from $%s", section, name)
            return value
    return None


def _resolve_sim_path(uri: str, file: Path | None) -> str:
    """Make ``backend=defs.yaml@sim`` relative to the bench file's folder."""
    if file is None or "?" not in uri:
        return uri
    head, query = uri.split("?", 1)
    pairs = parse_qsl(query, keep_blank_values=True)
    changed = False
    for i, (key, value) in enumerate(pairs):
        if key == "backend" and value.endswith("@sim") and value != "@sim":
            definitions = Path(value[: -len("@sim")])
            if not definitions.is_absolute():
                pairs[i] = (key, f"{(file.parent / definitions).resolve()}@sim")
                changed = True
    return f"{head}?{urlencode(pairs, safe='@/:')}" if changed else uri


class Bench:
    """The opened chip and instruments. Use as ``with open_bench(...) as bench:``."""

    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.chip: PhotonicDevice | None = None
        self.laser: Laser | None = None
        self.power_meter: PowerMeter | None = None
        self.tec: TemperatureController | None = None
        self._sigterm = SigtermUnwinds()
        self._closed = False

    # --- opening -------------------------------------------------------------------------------
    def open(self) -> Bench:
        from lumina_hal.bench.instruments import open_instrument
        from lumina_hal.registry import open_device

        try:
            for section in _SECTIONS:
                uri = self.config.uris.get(section)
                if uri is None:
                    continue
                if section == "chip":
                    self.chip = open_device(uri)
                    continue
                role = _ROLES[section]
                limits = self._limits_for(section)
                try:
                    instrument = open_instrument(uri, limits=limits)
                except ConfigurationError as exc:
                    raise ConfigurationError(
                        f"{self.config.path or 'bench'} [{section}]: {uri}: {exc}"
                    ) from exc
                if not isinstance(instrument, role):
                    instrument.safe_on_close = False
                    instrument.close()
                    raise ConfigurationError(
                        f"{self.config.path or 'bench'} [{section}]: {uri} is a "
                        f"{instrument.role}, not a {role.role}"
                    )
                if isinstance(instrument, Laser):
                    self.laser = instrument
                elif isinstance(instrument, TemperatureController):
                    self.tec = instrument
                elif isinstance(instrument, PowerMeter):
                    self.power_meter = instrument
        except BaseException:
            log.error("bench did not open completely; making the opened parts safe")
            self.close()
            raise
        return self

    def _limits_for(self, section: str) -> Limits | None:
        """The bench file's soft limits for a section (fixed at open); None: no limits."""
        if section == "laser":
            return self.config.laser_limits
        if section == "tec":
            return self.config.tec_limits
        return None

    @property
    def instruments(self) -> dict[str, Instrument]:
        parts = {"laser": self.laser, "tec": self.tec, "power_meter": self.power_meter}
        return {name: part for name, part in parts.items() if part is not None}

    # --- safety ----------------------------------------------------------------------------------
    def safe_shutdown(self) -> list[BaseException]:
        """Laser off first (the hazard to people), then the TEC; returns the failures."""
        failures: list[BaseException] = []
        for name, part in self.instruments.items():
            if not part.is_open:
                continue
            try:
                part.safe_shutdown()
            except BaseException as exc:  # keep going: the next part must still be made safe
                log.error("bench: safe state of the %s failed: %r", name, exc)
                failures.append(exc)
        return failures

    def close(self) -> None:
        """Safe state, then close every part; the first failure is raised after all ran."""
        if self._closed:
            return
        self._closed = True
        failures = self.safe_shutdown()
        for part in [*self.instruments.values(), self.chip]:
            if part is None:
                continue
            try:
                if isinstance(part, Instrument):
                    part.safe_on_close = False  # already done above
                part.close()
            except BaseException as exc:
                log.error("bench: closing %r failed: %r", part, exc)
                failures.append(exc)
        if failures:
            raise failures[0]

    def __enter__(self) -> Bench:
        self._sigterm.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is not None:
                log.warning("bench: leaving on %s; applying safe states", exc_type.__name__)
                try:
                    self.close()
                except BaseException as close_exc:  # the original exception wins
                    log.error("bench: safe shutdown after %r also failed: %r", exc, close_exc)
            else:
                self.close()
        finally:
            self._sigterm.__exit__()

    def swept_transmission(
        self,
        start_nm: float,
        stop_nm: float,
        step_nm: float,
        *,
        power_dbm: float | None = None,
        settle_s: float = 0.0,
        reference: Spectrum | None = None,
        run: Any = None,
        table: str = SPECTRUM_TABLE,
        progress: bool = False,
    ) -> Spectrum:
        """The transmission spectrum between this bench's laser and power meter.

        Switches the laser on (at ``power_dbm`` if given) for the sweep and off after it,
        whatever happens; every setting goes through the laser's limits. ``reference`` (a
        :func:`lumina_hal.bench.spectra.reference_sweep` on the same grid, else InputError
        before anything is sent) normalises point by point. See
        :func:`lumina_hal.bench.spectra.swept_transmission`.
        """
        if self.laser is None or self.power_meter is None:
            raise ConfigurationError(
                f"{self.config.path or 'bench'}: a spectrum needs a [laser] and a [power_meter]"
            )
        grid = wavelength_grid(start_nm, stop_nm, step_nm)
        check_reference_grid(grid, reference)
        laser = self.laser
        lo, hi = laser.wavelength_range_nm
        if min(grid) < lo or max(grid) > hi:
            raise SafetyLimitError(
                f"sweep {min(grid):g}-{max(grid):g} nm leaves the laser's range {lo:g}-{hi:g} nm"
            )
        laser.wavelength_nm = grid[0]
        if power_dbm is not None:
            laser.power_dbm = power_dbm
        laser.on()
        try:
            return swept_transmission(
                laser, self.power_meter, grid, settle_s=settle_s, reference=reference, run=run,
                table=table, progress=progress,
            )
        finally:
            laser.off()

    def snapshot(self) -> dict[str, Any]:
        """Bench file, chip identity and every instrument's settings and limits (run records)."""
        out: dict[str, Any] = {"bench_file": str(self.config.path) if self.config.path else None}
        if self.chip is not None:
            out["chip"] = {"uri": self.chip.uri, "info": self.chip.info.to_dict()}
        for name, part in self.instruments.items():
            try:
                out[name] = part.snapshot()
            except LuminaError as exc:
                out[name] = {"uri": part.uri, "error": str(exc)}
        return out


def open_bench(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Bench:
    """Open the bench in ``path`` (default: $LUMINA_BENCH, else the simulated bench)."""
    return Bench(load_bench_config(path, environ)).open()
