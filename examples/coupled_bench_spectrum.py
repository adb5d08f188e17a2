"""Swept transmission of the coupled simulated bench, split into couplers and MZIs.

Serves a coupled bench whose chip has the raw 2 µm MZI arm imbalance (docs/physics.md,
"Passband"), zeroes the meter with the laser off, sweeps 1490-1610 nm through the real drivers
and plots the measured spectrum over the couplers-only model, and below it the difference (the
MZIs' passband M(λ)) against its formula. Writes docs/figures/coupled-bench-spectrum.png:

    python examples/coupled_bench_spectrum.py docs/figures/coupled-bench-spectrum.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import lumina_hal
from lumina_hal.sim.coupled_bench import CoupledBench
from lumina_hal.twin.passband import coupler_passband_db, mzi_passband_db

ARM_IMBALANCE_UM = 2.0


def main(png: str) -> None:
    with tempfile.TemporaryDirectory() as folder, CoupledBench(
        {"arm_imbalance_um": ARM_IMBALANCE_UM}, speed=1000.0
    ) as sim:
        path = sim.write_bench(Path(folder) / "bench.toml")
        with lumina_hal.open_bench(path) as bench:
            bench.power_meter.zero()  # laser off: subtract the meter's dark offset
            spectrum = bench.swept_transmission(1490.0, 1610.0, 2.0, power_dbm=10.0)
    nm = spectrum.wavelength_nm
    measured = spectrum.transmission_db
    peak_db = float(measured[np.argmin(abs(nm - 1550.0))])
    couplers = np.array([2 * coupler_passband_db(w, 1550.0, 40.0) for w in nm]) + peak_db
    mzi = np.array([mzi_passband_db(w, 1550.0, ARM_IMBALANCE_UM) for w in nm])

    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(7.5, 6.0), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    top.plot(nm, measured, ".-", label="measured (couplers and MZIs)")
    top.plot(nm, couplers, "--", label="couplers alone, 2 G(λ)")
    top.set_ylabel("transmission (dB)")
    top.set_title(f"coupled bench, swept transmission (MZI arm imbalance {ARM_IMBALANCE_UM} µm)")
    top.legend()
    top.grid(alpha=0.3)
    bottom.plot(nm, measured - couplers, ".", label="measured − couplers")
    bottom.plot(nm, mzi, "-", label="M(λ), docs/physics.md")
    bottom.set_xlabel("wavelength (nm)")
    bottom.set_ylabel("MZI passband (dB)")
    bottom.legend()
    bottom.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png, dpi=110)
    print(f"peak {spectrum.peak()[1]:.2f} dB at {spectrum.peak()[0]:.1f} nm, "
          f"3 dB width {spectrum.bandwidth_nm(3.0):.2f} nm; wrote {png}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "coupled-bench-spectrum.png")
