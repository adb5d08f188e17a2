"""The ``visa://`` scheme: open a lab instrument by VISA resource and model name.

``visa://<resource>?model=<name>&backend=<@py|@ivi|@sim|file.yaml@sim>&timeout=<s>``.
Models come from the ``lumina_hal.instruments`` entry-point group (a plug-in table like the
device schemes). Without ``model=``, ``*IDN?`` picks the driver. docs/instruments.md §2.
"""

from __future__ import annotations

import logging
from typing import Any

from lumina_hal.bench.roles import Instrument, InstrumentIdentity
from lumina_hal.drivers.instruments.scpi import ScpiInstrument, open_visa_resource
from lumina_hal.errors import ConfigurationError, LinkError
from lumina_hal.params import Param
from lumina_hal.plugin_table import EntryPointTable
from lumina_hal.uri import DeviceURI

log = logging.getLogger(__name__)

MODEL_GROUP = "lumina_hal.instruments"
#: Terminations tried, in order, when the model is found from *IDN?.
_DETECT_TERMINATIONS = ("\n", "\r")
_DETECT_TIMEOUT_S = 0.5


def _check_model(name: str, cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, ScpiInstrument)):
        raise ConfigurationError(
            f"instrument model {name!r} must be a ScpiInstrument subclass, got {cls!r}"
        )


MODELS = EntryPointTable(MODEL_GROUP, "instrument model", _check_model)


def register_model(name: str, driver: type[ScpiInstrument]) -> None:
    """Add an instrument model at run time (entry points do it for installed packages)."""
    MODELS.register(name, driver)


class VisaInstrument(Instrument):
    """Scheme entry for ``visa://``; ``from_uri`` returns the model's driver, unopened."""

    summary = "lab instrument over VISA (open_instrument); model= names the driver"

    uri_params = (
        Param("model", str, "", "driver name, e.g. thorlabs-pm100d; empty: chosen from *IDN?"),
        Param("backend", str, "", "VISA library: @py, @ivi, @sim or file.yaml@sim"),
        Param("timeout", float, 2.0, "I/O timeout for one reply", unit="s", minimum=0.01,
              maximum=600.0),
    )

    @classmethod
    def from_uri(cls, uri: DeviceURI, **params: Any) -> Instrument:
        model: str = params.get("model", "")
        backend: str = params.get("backend", "")
        timeout: float = params.get("timeout", 2.0)
        resource = uri.location
        if not resource:
            raise ConfigurationError(
                f"{uri.uri!r} names no VISA resource; expected e.g. "
                "visa://USB0::0x1313::0x8078::P0009368::INSTR?model=thorlabs-pm100d"
            )
        driver = MODELS.get(model) if model else detect_model(resource, backend, timeout)
        return driver(resource, backend=backend, timeout_s=timeout)


def detect_model(resource: str, backend: str, timeout_s: float) -> type[ScpiInstrument]:
    """Ask ``*IDN?`` (trying LF, then CR termination) and return the driver that serves it."""
    identity: InstrumentIdentity | None = None
    failures: list[str] = []
    for termination in _DETECT_TERMINATIONS:
        handle = open_visa_resource(
            resource, backend, min(timeout_s, _DETECT_TIMEOUT_S), termination, termination
        )
        try:
            if failures:
                # End whatever the previous termination left in the instrument's input buffer.
                handle.write("")
            identity = InstrumentIdentity.parse(str(handle.query("*IDN?")))
            break
        except Exception as exc:
            failures.append(f"{termination!r}: {exc}")
        finally:
            handle.close()
    if identity is None:
        raise LinkError(
            f"{resource}: no *IDN? answer to find the model ({'; '.join(failures)}); "
            "give model= in the URI"
        )
    for name in MODELS.names():
        driver = MODELS.get(name)
        if driver.serves(identity):
            log.info("%s identified as %s (%s)", resource, name, identity)
            return driver
    raise ConfigurationError(
        f"{resource} is a {identity.vendor} {identity.model}, which no installed driver serves; "
        f"known models: {', '.join(MODELS.names())}"
    )
