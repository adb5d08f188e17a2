"""Open by URI: schemes through entry points, typed parameters, LUMINA_DEVICE."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

import lumina_hal
from lumina_hal import registry
from lumina_hal.errors import ConfigurationError, LuminaError
from lumina_hal.twin.device import MockDevice


def test_mock_scheme_comes_from_the_installed_entry_point():
    assert "mock" in registry._declared(refresh=True)
    assert registry.driver_for_scheme("mock") is MockDevice


def test_query_parameters_become_typed_keyword_arguments():
    with lumina_hal.open_device("mock://?rows=16&cols=4&seed=7&preset=harsh&temperature_c=60") as d:
        cfg = d.config
        assert (cfg.rows, cfg.cols, cfg.seed, cfg.preset, cfg.physics.temperature_c) == (
            16,
            4,
            7,
            "harsh",
            60.0,
        )
        assert d.info.uri == "mock://?rows=16&cols=4&seed=7&preset=harsh&temperature_c=60"


def test_keyword_overrides_take_precedence_and_are_validated():
    with lumina_hal.open_device("mock://?rows=16", rows=4, cols=3) as d:
        assert (d.info.rows, d.info.cols) == (4, 3)
    with pytest.raises(ConfigurationError, match=r"'rows'.*out of range"):
        lumina_hal.open_device("mock://", rows=0)


@pytest.mark.parametrize(
    ("uri", "fragments"),
    [
        ("nosuch://", ["unknown device scheme 'nosuch'", "mock://"]),
        ("mokc://", ["did you mean 'mock://'"]),
        ("mock://?rowz=8", ["unknown parameter 'rowz'", "did you mean 'rows'", "cols"]),
        ("mock://?rows=-1", ["'rows'", "-1", "out of range", "[1, 8192]"]),
        ("mock://?rows=eight", ["'rows'", "'eight'", "int in"]),
        ("mock://?preset=typcal", ["'preset'", "did you mean 'typical'", "ideal, typical, harsh"]),
        ("mock://somehost", ["takes no host or path", "somehost"]),
    ],
)
def test_bad_uris_raise_lumina_errors_naming_the_problem(uri, fragments):
    with pytest.raises(LuminaError) as info:
        lumina_hal.open_device(uri)
    assert isinstance(info.value, ConfigurationError)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_lumina_device_environment_variable_supplies_the_default(monkeypatch):
    monkeypatch.setenv("LUMINA_DEVICE", "mock://?rows=5&cols=2")
    with lumina_hal.open_device() as d:
        assert (d.info.rows, d.info.cols) == (5, 2)
    monkeypatch.delenv("LUMINA_DEVICE")
    assert registry.default_uri() == "mock://"


def test_a_driver_registered_through_an_entry_point_opens_by_uri(tmp_path, monkeypatch):
    """A separately installed package declaring the entry-point group is found by scheme."""
    (tmp_path / "thirdparty_chip.py").write_text(
        textwrap.dedent("""
        from lumina_hal.twin.device import MockDevice

        class ThirdPartyChip(MockDevice):
            summary = "a third-party backend"
    """)
    )
    dist = tmp_path / "thirdparty_chip-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-chip\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[lumina_hal.drivers]\nacme = thirdparty_chip:ThirdPartyChip\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        # Not cached yet: the registry re-reads entry points on a miss.
        with lumina_hal.open_device("acme://?rows=3&cols=2") as chip:
            assert type(chip).__name__ == "ThirdPartyChip"
            chip.load_weights(np.eye(3, 2))
            assert chip.matmul(np.array([1.0, 0.0])).shape == (3,)
        assert "acme" in lumina_hal.available_schemes()
    finally:
        sys.modules.pop("thirdparty_chip", None)
        registry._declared(refresh=True)


def test_entry_point_that_is_not_a_device_is_refused(tmp_path, monkeypatch):
    (tmp_path / "notadevice.py").write_text("class Thing:\n    pass\n")
    dist = tmp_path / "notadevice-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: notadevice\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[lumina_hal.drivers]\nthing = notadevice:Thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(ConfigurationError, match="must be a PhotonicDevice or Instrument"):
            lumina_hal.open_device("thing://")
    finally:
        sys.modules.pop("notadevice", None)
        registry._declared(refresh=True)


def test_runtime_registration_and_removal():
    class Tiny(MockDevice):
        pass

    lumina_hal.register_driver("tiny", Tiny)
    try:
        with lumina_hal.open_device("tiny://?rows=2&cols=2") as d:
            assert isinstance(d, Tiny)
    finally:
        lumina_hal.unregister_driver("tiny")
    with pytest.raises(ConfigurationError, match="unknown device scheme"):
        lumina_hal.open_device("tiny://")
    with pytest.raises(ConfigurationError, match="PhotonicDevice or Instrument subclass"):
        lumina_hal.register_driver("bad", dict)  # type: ignore[arg-type]
