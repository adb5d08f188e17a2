#!/usr/bin/env bash
# Build the C kernel with AddressSanitizer + UBSan and run tests/test_kernel_native.py,
# tests/test_program_native.py and tests/test_crc.py (programming and the weights id,
# lk_program.c) and tests/test_kernel_v2.py
# (physics v2's lk_v2_forward) on it.
#
# Everything happens in a throwaway directory (a copy of the working tree and a fresh venv),
# so the developer's own build is left alone. The interpreter is not instrumented, so the
# gcc ASan runtime is preloaded; leak detection is off because CPython keeps memory until
# exit by design. Exits non-zero on any test failure or sanitizer report.
#
# Usage: native/run_sanitized_tests.sh [extra pytest arguments]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/lumina-asan.XXXXXX")"
trap 'rm -rf "$work"' EXIT

libasan="$(gcc -print-file-name=libasan.so)"
if [ ! -e "$libasan" ]; then
    echo "run_sanitized_tests: gcc's libasan.so not found (got '$libasan')" >&2
    exit 2
fi

echo "+ copying the working tree to $work/src"
mkdir -p "$work/src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 tar -cf - --ignore-failed-read 2>/dev/null) | tar -xf - -C "$work/src"

echo "+ building with LUMINA_SANITIZE=1"
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --upgrade pip >/dev/null 2>&1 || true
# A regular (not editable) install: the suite tests the installed package (tests/conftest.py).
if ! LUMINA_SANITIZE=1 "$work/venv/bin/pip" install --quiet "$work/src[test]" \
    >"$work/pip.log" 2>&1; then
    cat "$work/pip.log" >&2
    echo "run_sanitized_tests: the sanitized kernel did not build" >&2
    exit 2
fi
so="$(ls "$work"/venv/lib/python3*/site-packages/lumina_hal/_lumina_kernel*.so)"
# grep reads all of nm's output (no -q): with pipefail, a grep that exits at the first match
# can kill nm with SIGPIPE and fail the pipeline although the symbol is there.
if ! nm -D "$so" | grep __asan_report >/dev/null; then
    echo "run_sanitized_tests: $so is not instrumented" >&2
    exit 2
fi

echo "+ pytest tests/test_kernel_native.py tests/test_program_native.py tests/test_crc.py tests/test_kernel_v2.py under ASan + UBSan"
log="$work/pytest.log"
set +e
(
    cd "$work"
    LD_PRELOAD="$libasan" \
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1" \
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
        "$work/venv/bin/python" -m pytest -p no:cacheprovider --capture=sys -q \
        src/tests/test_kernel_native.py src/tests/test_program_native.py src/tests/test_crc.py src/tests/test_kernel_v2.py "$@"
) 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

if grep -qE "ERROR: AddressSanitizer|runtime error:|ERROR: UndefinedBehaviorSanitizer" "$log"; then
    echo "run_sanitized_tests: sanitizer report (see above)" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "run_sanitized_tests: pytest failed with status $status" >&2
    exit "$status"
fi
echo "run_sanitized_tests: OK"
