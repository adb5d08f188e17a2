"""Peer drivers of the Keysight 8164B and the Thorlabs TED4015, against our simulators over TCP.

What the peers extra (PyMeasure, qcodes_contrib_drivers) and QCoDeS itself ship for these two:

- Keysight 8164B: no driver of the 8164B itself. PyMeasure's ``KeysightN7776C`` drives the
  same 816x/N77xx source language in slot 0 (``SOUR0:...``, ``LOCK``, the ``SOUR0:WAV:SWE``
  sweep with lambda logging), so a lab points it at an 8164B; every public call is listed here
  and works on our model.
- Thorlabs TED4015: neither PyMeasure, QCoDeS nor qcodes_contrib_drivers has a driver (checked in
  the installed versions: no TED4000/Series 4000 module), so there is nothing to run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("pymeasure")

from pymeasure.instruments.keysight import KeysightN7776C

from lumina_hal.sim.scpi.keysight8164b import Keysight8164B
from lumina_hal.sim.scpi.server import ScpiTcpServer

pytestmark = pytest.mark.filterwarnings(
    "ignore:It is not known whether this device support SCPI:FutureWarning"
)

@pytest.fixture
def n7776c() -> Iterator[tuple[Any, Keysight8164B]]:
    model = Keysight8164B()
    with ScpiTcpServer(model) as server:
        inst = KeysightN7776C(
            server.resource, visa_library="@py", timeout=2000,
            read_termination="\n", write_termination="\n",
        )  # fmt: skip
        try:
            yield inst, model
        finally:
            inst.adapter.close()


def _set(name: str, value: Any) -> Callable[[Any], Any]:
    return lambda inst: setattr(inst, name, value)


def _get(name: str) -> Callable[[Any], Any]:
    return lambda inst: getattr(inst, name)


N7776C_CALLS: list[tuple[str, Callable[[Any], Any]]] = [
    ("id", _get("id")),
    ("locked", _get("locked")), ("locked = True", _set("locked", True)),
    ("locked = False", _set("locked", False)),
    ("output_enabled = True", _set("output_enabled", True)),
    ("output_enabled", _get("output_enabled")),
    ("output_power_dBm = 3", _set("output_power_dBm", 3.0)),
    ("output_power_dBm", _get("output_power_dBm")),
    ("output_power_mW = 2", _set("output_power_mW", 2.0)),
    ("output_power_mW", _get("output_power_mW")),
    ("wavelength = 1560", _set("wavelength", 1560.0)), ("wavelength", _get("wavelength")),
    ("trigger_out = 'STF'", _set("trigger_out", "STF")), ("trigger_out", _get("trigger_out")),
    ("trigger_in = 'SWS'", _set("trigger_in", "SWS")), ("trigger_in", _get("trigger_in")),
    ("sweep_wl_start = 1550", _set("sweep_wl_start", 1550.0)),
    ("sweep_wl_start", _get("sweep_wl_start")),
    ("sweep_wl_stop = 1552", _set("sweep_wl_stop", 1552.0)),
    ("sweep_wl_stop", _get("sweep_wl_stop")),
    ("sweep_step = 0.5", _set("sweep_step", 0.5)), ("sweep_step", _get("sweep_step")),
    ("sweep_speed = 200", _set("sweep_speed", 200)), ("sweep_speed", _get("sweep_speed")),
    ("sweep_mode = 'CONT'", _set("sweep_mode", "CONT")), ("sweep_mode", _get("sweep_mode")),
    ("sweep_twoway = False", _set("sweep_twoway", False)),
    ("sweep_twoway", _get("sweep_twoway")),
    ("wl_logging = True", _set("wl_logging", True)), ("wl_logging", _get("wl_logging")),
    ("trigger_out = 'STF' (for logging)", _set("trigger_out", "STF")),
    ("valid_sweep_params()", lambda inst: inst.valid_sweep_params()),
    ("sweep_state = 1", _set("sweep_state", 1)), ("sweep_state", _get("sweep_state")),
    ("sweep_state = 2", _set("sweep_state", 2)), ("sweep_state = 0", _set("sweep_state", 0)),
    ("sweep_points", _get("sweep_points")),
    ("get_wl_data()", lambda inst: inst.get_wl_data()),
    ("sweep_mode = 'MAN'", _set("sweep_mode", "MAN")),
    ("wl_logging = False", _set("wl_logging", False)),
    ("sweep_state = 1 (manual)", _set("sweep_state", 1)),
    ("next_step()", lambda inst: inst.next_step()),
    ("previous_step()", lambda inst: inst.previous_step()),
    ("sweep_state = 0 (manual)", _set("sweep_state", 0)),
    ("output_enabled = False", _set("output_enabled", False)),
]  # fmt: skip
N7776C_PUBLIC = {
    "locked", "output_enabled", "output_power_mW", "output_power_dBm", "trigger_out",
    "trigger_in", "wavelength", "sweep_wl_start", "sweep_wl_stop", "sweep_step", "sweep_speed",
    "sweep_mode", "sweep_twoway", "sweep_points", "sweep_state", "wl_logging",
    "valid_sweep_params", "next_step", "previous_step", "get_wl_data", "id",
}  # fmt: skip


def test_the_calls_cover_the_drivers_public_surface():
    own = {n for n in vars(KeysightN7776C) if not n.startswith("_")} - {"close"}
    called = {c.split(" ")[0].rstrip("()") for c, _ in N7776C_CALLS}
    assert own <= N7776C_PUBLIC <= called


def test_every_pymeasure_n7776c_call_works_on_our_8164b(n7776c):
    """In order (a sweep is configured before it runs), each with no queued SCPI error."""
    inst, model = n7776c
    for call, action in N7776C_CALLS:
        action(inst)
        with model.lock:
            assert len(model.engine.errors) == 0, f"{call} queued an SCPI error"


def test_pymeasure_n7776c_logs_a_sweep_in_metres_read_as_nm(n7776c):
    inst, model = n7776c
    inst.sweep_wl_start, inst.sweep_wl_stop, inst.sweep_step = 1550.0, 1552.0, 0.5
    inst.sweep_speed, inst.trigger_out, inst.wl_logging = 200, "STF", True
    assert inst.valid_sweep_params()
    now = [0.0]
    with model.lock:
        model.sweep.clock = lambda: now[0]  # the sweep's clock, stepped by hand
    inst.sweep_state = 1
    assert inst.sweep_state == 1
    now[0] = 0.011  # 2 nm at 200 nm/s take 10 ms
    assert inst.sweep_state == 0
    assert inst.sweep_points == 5
    assert inst.get_wl_data() == pytest.approx([1550e-9, 1550.5e-9, 1551e-9, 1551.5e-9, 1552e-9])


def test_pymeasure_n7776c_values_round_trip_and_lock_is_honoured(n7776c):
    inst, model = n7776c
    inst.wavelength = 1560.0  # the old YAML read this back as 1550
    assert inst.wavelength == pytest.approx(1560.0)
    inst.output_power_mW = 2.0
    assert inst.output_power_mW == pytest.approx(2.0, rel=1e-3)
    assert inst.output_power_dBm == pytest.approx(3.0103, abs=1e-3)
    inst.locked = True
    inst.output_enabled = True  # refused by the locked laser
    assert inst.output_enabled is False and inst.locked is True
    with model.lock:
        assert model.process("SYST:ERR?") == '-221,"Settings conflict"'
    inst.locked = False
    inst.output_enabled = True
    assert inst.output_enabled is True

