"""Two builds of the twin side by side: CPU time per call against bare SGEMM, one thread.

For kernel changes (issue 12): an older build (``lumina_hal_old``, made by
``python benchmarks/bench_callpath.py --make-old INSTALLED DIR``) and the installed one
open twins of the same weights and seed; their outputs are checked bit-identical, then
each cell times old twin, new twin and ``np.matmul(x, W.T, out=)`` (OpenBLAS limited to one
thread, on its own kernel choice: OPENBLAS_CORETYPE/L2 overrides are dropped) in interleaved
rounds with ``time.process_time`` (CPU time: far less sensitive to
other load on a shared machine than wall clock), min of 3 blocks per round, min over the
rounds. Prints the CPU model, the SIMD path and the load average.

    python benchmarks/bench_kernel_ab.py --against DIR [--cells 64x32,256x256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from bench_twin import _blas_info, _cpu_model, reexec_without_openblas_overrides
from threadpoolctl import threadpool_limits

from lumina_hal.twin import kernel
from lumina_hal.twin.device import MockDevice

CELLS = "64x32,64x256,256x32,256x256,1024x32,1024x256,4096x1,4096x32"


def cpu_us(fn: Callable[[], Any], n: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, time.process_time() - start)
    return best / n * 1e6


def loadavg() -> str:
    with open("/proc/loadavg", encoding="utf-8") as f:
        return " ".join(f.read().split()[:3])


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--against", type=Path, required=True, help="directory holding lumina_hal_old")
    ap.add_argument("--cells", default=CELLS, help=f"SIZExBATCH list (default {CELLS})")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    args = ap.parse_args()
    sys.path.insert(0, str(args.against))
    from lumina_hal_old.twin.device import MockDevice as Old  # type: ignore[import-not-found]

    cells = [tuple(int(v) for v in c.split("x")) for c in args.cells.split(",")]
    print(f"cpu {_cpu_model()}, SIMD path {kernel.isa_name()}, 1 thread, load {loadavg()}")
    print(f"blas {_blas_info()[0]}")
    head = ("cell", "noise", "old µs", "new µs", "bare µs", "old/bare", "new/bare", "new/old")
    print("{:>11} {:>5} {:>9} {:>9} {:>9} {:>8} {:>8} {:>7}".format(*head))
    with threadpool_limits(1):
        for size, batch in cells:
            rng = np.random.default_rng(1)
            w = rng.uniform(-1, 1, (size, size))
            x = rng.uniform(-1, 1, (batch, size)).astype(np.float32)
            wt = np.ascontiguousarray(w.T.astype(np.float32))
            for noise in (True, False):
                chips = {
                    "old": Old(rows=size, cols=size, seed=3, threads=1, noise=noise).open(),
                    "new": MockDevice(rows=size, cols=size, seed=3, threads=1, noise=noise).open(),
                }
                outs = {}
                for name, chip in chips.items():
                    chip.load_weights(w)
                    outs[name] = np.empty((batch, size), np.float32)
                    chip.matmul(x, out=outs[name])
                same = np.array_equal(outs["old"].view(np.uint32), outs["new"].view(np.uint32))
                assert same, "old and new builds give different bits"
                bare_out = np.empty((batch, size), np.float32)
                n = max(3, min(20000, int(5e7 / (size * size * batch))))
                best = {"old": float("inf"), "new": float("inf"), "bare": float("inf")}
                for _ in range(args.rounds):
                    for name, chip in chips.items():
                        run = partial(chip.matmul, x, out=outs[name])
                        best[name] = min(best[name], cpu_us(run, n))
                    bare = cpu_us(partial(np.matmul, x, wt, out=bare_out), n)
                    best["bare"] = min(best["bare"], bare)
                for chip in chips.values():
                    chip.close()
                o, nw, b = best["old"], best["new"], best["bare"]
                print(
                    f"{size:>5}² b{batch:<4} {'on' if noise else 'off':>5} {o:9.2f} {nw:9.2f}"
                    f" {b:9.2f} {o / b:8.2f} {nw / b:8.2f} {nw / o:7.3f}",
                    flush=True,
                )
    print(f"load at the end {loadavg()}")


if __name__ == "__main__":
    reexec_without_openblas_overrides()
    main()
