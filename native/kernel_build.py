"""cffi builder for the twin kernel: compiles native/*.c into lumina_hal._lumina_kernel.

API mode (set_source) so calls release the GIL and arrays pass zero-copy through
ffi.from_buffer. Flags are portable: no -march=native (SIMD is chosen at run time).
"""

from __future__ import annotations

import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "lumina_kernel.h")
# Relative to the project root, where setuptools runs the build.
SOURCES = [
    os.path.join("native", name)
    for name in ("lumina_kernel.c", "lk_pool.c", "lk_rng.c", "lk_scalar.c", "lk_x86.c")
]
# Programming the array (host codes, chip-side W_eff, per-cell draws): its own file.
SOURCES += [os.path.join("native", "lk_program.c")]
# Physics v2's per-call engine (docs/physics.md section 7.6): its own file.
SOURCES += [os.path.join("native", "lk_v2.c")]
DEPENDS = [os.path.join("native", name) for name in ("lumina_kernel.h", "lk_internal.h")]


def _cdef_from_header(path: str) -> str:
    """The declarations cffi needs, taken from the header so they cannot drift from it."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    text = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    body = "\n".join(lines)
    defines = re.findall(r"#define\s+(LK_[A-Z0-9_]+)\s+(\d+)", source)
    consts = "\n".join(f"#define {name} {value}" for name, value in defines)
    return consts + "\n" + body


def _sanitize() -> bool:
    """LUMINA_SANITIZE=1 builds with AddressSanitizer and UBSan (native/run_sanitized_tests.sh)."""
    return os.environ.get("LUMINA_SANITIZE", "") not in ("", "0")


def _compile_args() -> list[str]:
    # -ffp-contract=off: no implicit a*b+c fusion, so only the explicit fmaf / FMA intrinsics
    # fuse, identically on every ISA path. -fno-math-errno lets sqrtf/rintf inline.
    args = ["-O3", "-std=c11", "-ffp-contract=off", "-fno-math-errno", "-pthread"]
    if _sanitize():
        args += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
    return args


def _link_args() -> list[str]:
    args = ["-pthread"]
    if _sanitize():
        args += ["-fsanitize=address,undefined"]
    return args


ffibuilder = FFI()
ffibuilder.cdef(_cdef_from_header(HEADER))
ffibuilder.set_source(
    "lumina_hal._lumina_kernel",
    '#include "lumina_kernel.h"',
    sources=SOURCES,
    depends=DEPENDS,
    include_dirs=[HERE],
    extra_compile_args=_compile_args(),
    extra_link_args=_link_args(),
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
