"""CPU time of one call through the public API of mock:// (issue 12: 64² batch 1 ≤ 2 µs).

Prints µs per call of ``chip.matmul`` (noise on, one thread) at 64² batch 1 and 32 and 256²
batch 1: with ``out=``, without, and with a float64 ``x`` (the general path). CPU time
(``time.process_time``, robust to other load), min of 5 blocks per round, min over
interleaved rounds. ``--against DIR`` also times an older build side by side in the same
process: DIR holds a copy of its installed ``lumina_hal`` renamed ``lumina_hal_old``, made by

    python benchmarks/bench_callpath.py --make-old /path/to/site-packages/lumina_hal DIR

Results and counters of the two are checked equal (same weights, seed and call index).
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from lumina_hal.twin import kernel
from lumina_hal.twin.device import MockDevice

CASES = ((64, 1), (64, 32), (256, 1))
MODES = ("out=", "no out", "float64 x")


def make_old(installed: Path, dest: Path) -> None:
    """Copy an installed ``lumina_hal`` to DEST/lumina_hal_old with its imports renamed."""
    target = dest / "lumina_hal_old"
    shutil.copytree(installed, target, dirs_exist_ok=True)
    for path in target.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"\blumina_hal\b(?=[.]| import)", "lumina_hal_old", text)
        path.write_text(text.replace("import lumina_hal\n", "import lumina_hal_old\n"), "utf-8")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def per_call_us(matmul: Any, x: np.ndarray, out: np.ndarray | None, n: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        if out is None:
            for _ in range(n):
                matmul(x)
        else:
            for _ in range(n):
                matmul(x, out=out)
        best = min(best, time.process_time() - start)
    return best / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--against", type=Path, help="directory holding lumina_hal_old")
    ap.add_argument("--make-old", nargs=2, type=Path, metavar=("INSTALLED", "DIR"))
    args = ap.parse_args()
    if args.make_old:
        make_old(*args.make_old)
        return
    builds: dict[str, Any] = {"new": MockDevice}
    if args.against:
        sys.path.insert(0, str(args.against))
        from lumina_hal_old.twin.device import MockDevice as Old  # type: ignore[import-not-found]

        builds = {"old": Old, **builds}
    versions = f"Python {platform.python_version()}, numpy {np.__version__}"
    print(f"cpu {cpu_model()}, SIMD path {kernel.isa_name()}, {versions}; µs per call (CPU time)")
    for size, batch in CASES:
        w = np.random.default_rng(1).uniform(-1, 1, (size, size))
        x = np.random.default_rng(2).uniform(-1, 1, (batch, size) if batch > 1 else size)
        x = x.astype(np.float32)
        chips = {}
        for name, cls in builds.items():
            chips[name] = cls(rows=size, cols=size, seed=3, threads=1).open()
            chips[name].load_weights(w)
        ys = {name: chip.matmul(x) for name, chip in chips.items()}
        assert all(np.array_equal(y, ys["new"]) for y in ys.values()), "results differ"
        n = max(500, 40000 // (batch * size // 64))
        for mode in MODES:
            best = dict.fromkeys(chips, float("inf"))
            xin = x.astype(np.float64) if mode == "float64 x" else x
            for _ in range(args.rounds):
                for name, chip in chips.items():
                    out = np.empty(ys["new"].shape, np.float32) if mode == "out=" else None
                    us = per_call_us(chip.matmul, xin, out, n // (4 if out is None else 1))
                    best[name] = min(best[name], us)
            cells = "  ".join(f"{name} {us:7.3f}" for name, us in best.items())
            ratio = f"  new/old {best['new'] / best['old']:.3f}" if "old" in best else ""
            print(f"{size:4d}² batch {batch:3d} {mode:10s} {cells}{ratio}", flush=True)
        counters = [chip.telemetry().counters for chip in chips.values()]
        assert all(c == counters[-1] for c in counters), counters


if __name__ == "__main__":
    main()
