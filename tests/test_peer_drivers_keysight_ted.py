"""Peer drivers of the Keysight 8164B and the Thorlabs TED4015, against our simulators over TCP.

What the peers extra (PyMeasure, qcodes_contrib_drivers) and QCoDeS itself ship for these two:

- Keysight 8164B: no driver of the 8164B itself. PyMeasure's ``KeysightN7776C`` drives the
  same 816x/N77xx source language in slot 0 (``SOUR0:...``, ``LOCK``), so a lab points it at an
  8164B; its every source call is listed here and works on our model, except the sweep calls,
  named in NOT_MODELLED with the reason.
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

#: KeysightN7776C calls that cannot work on our 8164B model, and why (named, not hidden).
NOT_MODELLED = {
    "sweep_wl_start / sweep_wl_stop / sweep_step / sweep_speed / sweep_mode / sweep_twoway / "
    "sweep_state / wl_logging / sweep_points / valid_sweep_params / next_step / previous_step / "
    "get_wl_data": "the 8164B's own wavelength sweep (SOUR0:WAV:SWE...) is not modelled; the "
    "bench sweeps by stepping the laser (swept_transmission), and the TSL-570 model carries the "
    "laser-driven sweep",
}


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
    ("output_enabled = False", _set("output_enabled", False)),
]  # fmt: skip


@pytest.mark.parametrize(("call", "action"), N7776C_CALLS, ids=[c for c, _ in N7776C_CALLS])
def test_every_pymeasure_n7776c_source_call_works_on_our_8164b(n7776c, call, action):
    inst, model = n7776c
    action(inst)
    with model.lock:
        assert len(model.engine.errors) == 0, f"{call} queued an SCPI error"


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


def test_the_not_modelled_calls_are_the_sweep_family():
    names = [n.strip() for n in next(iter(NOT_MODELLED)).split("/")]
    sweep_attrs = {name for name in dir(KeysightN7776C) if "sweep" in name or "wl_" in name}
    assert {"sweep_wl_start", "sweep_state", "get_wl_data", "wl_logging"} <= set(names)
    assert sweep_attrs - {"_sweep_params_consistent"} <= set(names)
