"""The real driver against the emulator in a separate process, over a pty and over TCP."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

import lumina_hal

PARAMS = {"rows": 16, "cols": 12, "seed": 4, "preset": "harsh"}


@pytest.fixture(params=["pty", "tcp"])
def served_uri(request):
    """Start `lumina-hal sim fpga` as its own process; yield the URI it prints."""
    where = ["--pty"] if request.param == "pty" else ["--tcp", "127.0.0.1:0"]
    args = [sys.executable, "-m", "lumina_hal", "sim", "fpga", *where]
    for name, value in PARAMS.items():
        args += ["--param", f"{name}={value}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        match = re.search(r"connect with: (\S+)", "".join(lines))
        assert match, f"no URI printed: {lines!r} {proc.stderr.read() if proc.poll() else ''}"
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_driver_over_a_real_transport_equals_the_twin(served_uri):
    rng = np.random.default_rng(3)
    w = rng.uniform(-1, 1, size=(16, 12))
    x = rng.uniform(-1, 1, size=(700, 12))  # several RUN frames
    with lumina_hal.open_device("mock://", **PARAMS) as twin:
        twin_id = twin.load_weights(w)
        expected = [twin.matmul(x), twin.matmul(x[:5])]
    with lumina_hal.open_device(served_uri) as chip:
        assert chip.info.rows == 16 and "emulator" in chip.info.model
        assert chip.load_weights(w) == twin_id
        got = [chip.matmul(x), chip.matmul(x[:5])]
        chip.set_temperature(70.0)
        assert chip.telemetry().temperature_c == pytest.approx(70.0)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)
    with lumina_hal.open_device(served_uri) as again:  # the server outlives a client
        assert again.info.serial == "TWIN-0000000000000004"
