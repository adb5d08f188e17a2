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
SOURCES = [os.path.join("native", "lumina_kernel.c")]


def _cdef_from_header(path: str) -> str:
    """The declarations cffi needs, taken from the header so they cannot drift from it."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    text = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    body = "\n".join(lines)
    defines = re.findall(r"#define\s+(LK_[A-Z_]+)\s+(\d+)", source)
    consts = "\n".join(f"#define {name} {value}" for name, value in defines)
    return consts + "\n" + body


def _compile_args() -> list[str]:
    args = ["-O3", "-std=c11", "-ffp-contract=off", "-fno-math-errno"]
    if os.environ.get("LUMINA_SANITIZE"):
        args += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
    return args


def _link_args() -> list[str]:
    return ["-fsanitize=address,undefined"] if os.environ.get("LUMINA_SANITIZE") else []


ffibuilder = FFI()
ffibuilder.cdef(_cdef_from_header(HEADER))
ffibuilder.set_source(
    "lumina_hal._lumina_kernel",
    '#include "lumina_kernel.h"',
    sources=SOURCES,
    include_dirs=[HERE],
    extra_compile_args=_compile_args(),
    extra_link_args=_link_args(),
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
