"""SCPI instruments over pyvisa, with settings declared as private, gated properties.

A driver lists its settings the way the manual does, one line each, in the role's units::

    _wavelength_nm = control(":WAV?", ":WAV {:.8E}", "Output wavelength (nm, sent in m).",
                             parse=m_to_nm, format=nm_to_m,
                             validate=in_range("_wavelength_min_nm", "_wavelength_max_nm", "nm"))

The attribute is private (a leading ``_``: the public surface is the role API) and gated: its
quantity is the name without the underscore (``wavelength_nm``; ``gate=`` names another), and
assigning it goes through the instrument's safety gate (type, soft limit, interlocks), then the
instrument's range (``validate``), then the write, then the error-queue drain (docs/safety.md
§3). So every set either took effect or raised, and none skips the soft limits. Reading sends
the query and parses the reply. pyvisa errors become LinkErrors.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import pyvisa

from lumina_hal.bench.roles import Instrument, InstrumentIdentity
from lumina_hal.bench.safety import Kind
from lumina_hal.drivers.instruments.visa_backends import library_spec
from lumina_hal.errors import (
    ConfigurationError,
    DeviceClosedError,
    InputError,
    InstrumentError,
    LinkError,
    SafetyLimitError,
)

log = logging.getLogger(__name__)

#: At most this many SYST:ERR? reads per drain, so a broken instrument cannot hang it.
MAX_ERROR_READS = 32

_ERROR_REPLY = re.compile(r'^\s*([+-]?\d+)\s*(?:,\s*"?(.*?)"?)?\s*$')


class VisaResource(Protocol):
    """What a driver uses of a pyvisa MessageBasedResource (and what test fakes provide)."""

    timeout: float | None  # ms

    def write(self, message: str) -> Any: ...
    def query(self, message: str) -> str: ...
    def close(self) -> None: ...


Validator = Callable[[Any, str, Any], Any]


def parse_bool(reply: str) -> bool:
    """``1``/``+1``/``ON`` → True, ``0``/``+0``/``OFF`` → False."""
    text = reply.strip().upper()
    if text in ("1", "+1", "ON"):
        return True
    if text in ("0", "+0", "OFF"):
        return False
    raise ValueError(f"not a SCPI boolean: {reply!r}")


def parse_int(reply: str) -> int:
    value = float(reply)
    if not value.is_integer():
        raise ValueError(f"not an integer: {reply!r}")
    return int(value)


def format_bool(value: bool) -> str:
    return "1" if value else "0"


def m_to_nm(reply: str) -> float:
    """A wavelength reply in metres, as nm."""
    return float(reply) * 1e9


def nm_to_m(nm: float) -> float:
    return nm * 1e-9


def parse_error(reply: str) -> tuple[int, str]:
    """``-113,"Undefined header"`` or ``+0,"No error"`` → (code, text)."""
    match = _ERROR_REPLY.match(reply)
    if not match:
        raise ValueError(f"not a SCPI error-queue entry: {reply!r}")
    return int(match.group(1)), (match.group(2) or "").strip()


def in_range(low: float | str, high: float | str, unit: str) -> Validator:
    """Refuse values outside [low, high]; a bound given as a str is an attribute of the driver
    (a range the instrument reported at open)."""

    def validate(instrument: Any, name: str, value: Any) -> Any:
        lo = getattr(instrument, low) if isinstance(low, str) else low
        hi = getattr(instrument, high) if isinstance(high, str) else high
        slack = 1e-9 * max(abs(lo), abs(hi))  # unit conversions (nm → m) round
        if not lo - slack <= value <= hi + slack:
            raise InputError(
                f"{name} = {value:g} {unit} is outside the range of this {instrument.model_name} "
                f"[{lo:g}, {hi:g}] {unit}; nothing was sent"
            )
        return value

    return validate


def integer_in_range(low: int, high: int) -> Validator:
    def validate(instrument: Any, name: str, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InputError(
                f"{name} must be an integer in [{low}, {high}] for {instrument.model_name}, "
                f"got {value!r}; nothing was sent"
            )
        return value

    return validate


class ScpiProperty:
    """A data descriptor for one SCPI setting or reading (see :func:`control`).

    A settable one must have a private name and writes only through the safety gate.
    """

    def __init__(
        self,
        get_command: str | None,
        set_command: str | None,
        doc: str,
        parse: Callable[[str], Any] = float,
        format: Callable[[Any], Any] | None = None,
        validate: Validator | None = None,
        gate: str | None = None,
        kind: Kind | None = None,
    ) -> None:
        self.get_command = get_command
        self.set_command = set_command
        self.parse = parse
        self.format = format
        self.validate = validate
        self.gate = gate
        #: What the gate expects: inferred from ``parse`` unless given.
        self.kind: Kind = kind or (
            "bool" if parse is parse_bool else "int" if parse is parse_int else "number"
        )
        self.name = ""
        self.quantity = gate or ""
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        if self.set_command is not None and not name.startswith("_"):
            raise ConfigurationError(
                f"{owner.__name__}.{name}: a settable SCPI attribute must be private "
                f"(_{name}); the public surface is the role API (docs/safety.md §5)"
            )
        self.name = name
        self.quantity = self.gate or name.lstrip("_")

    def __get__(self, instrument: Any, owner: type | None = None) -> Any:
        if instrument is None:
            return self
        if self.get_command is None:
            raise InputError(f"{self.name} is write-only")
        return instrument._query_parsed(self.get_command, self.parse)

    def __set__(self, instrument: Any, value: Any) -> None:
        if self.set_command is None:
            raise InputError(f"{self.name} is read-only")
        instrument._gated_write(
            self.quantity, self.kind, value, lambda checked: self._send(instrument, checked)
        )

    def _send(self, instrument: Any, value: Any) -> None:
        """After the gate: the instrument's range, the format, the write and the error queue.

        A number is checked once more as the wire will carry it (``:POW 10.00`` for 9.996):
        ``parse`` reads the formatted argument back into the role's unit, and the gate checks
        that value too, so rounding can never carry a setting past a soft limit.
        """
        instrument._write(self.preflight(instrument, value))

    def preflight(self, instrument: Any, value: Any) -> str:
        """Steps 3 and 3b without writing: the command that would be sent, or the error."""
        if self.validate is not None:
            value = self.validate(instrument, self.name, value)
        if self.format is not None:
            value = self.format(value)
        if self.set_command is None:  # pragma: no cover - __set__ refuses first
            raise InputError(f"{self.name} is read-only")
        if self.kind == "number":
            wire_value = self.parse(_argument(self.set_command, value))
            instrument._gate.check_sent(self.quantity, wire_value)
        return self.set_command.format(value)


def _argument(set_command: str, value: Any) -> str:
    """The text the ``{...}`` field of ``set_command`` turns ``value`` into (no literal text)."""
    for _, field, spec, conversion in string.Formatter().parse(set_command):
        if field is not None:
            return ("{" + (f"!{conversion}" if conversion else "") + f":{spec}" + "}").format(value)
    raise ConfigurationError(f"SCPI set command {set_command!r} has no {{}} field for the value")


def control(
    get_command: str,
    set_command: str,
    doc: str,
    *,
    parse: Callable[[str], Any] = float,
    format: Callable[[Any], Any] | None = None,
    validate: Validator | None = None,
    gate: str | None = None,
    kind: Kind | None = None,
) -> ScpiProperty:
    """A setting that can be read and written (PyMeasure's ``Instrument.control`` idea).

    Its writes are gated under ``gate`` (default: the attribute name without the ``_``).
    """
    return ScpiProperty(get_command, set_command, doc, parse, format, validate, gate, kind)


def measurement(get_command: str, doc: str, *, parse: Callable[[str], Any] = float) -> ScpiProperty:
    """A read-only value."""
    return ScpiProperty(get_command, None, doc, parse)


def setting(
    set_command: str,
    doc: str,
    *,
    format: Callable[[Any], Any] | None = None,
    validate: Validator | None = None,
    gate: str | None = None,
    kind: Kind | None = None,
) -> ScpiProperty:
    """A write-only setting (its read-back has another command or unit); gated like control."""
    return ScpiProperty(None, set_command, doc, float, format, validate, gate, kind)


class ScpiInstrument(Instrument):
    """Connection, I/O error mapping and error-queue checks shared by every SCPI driver."""

    #: The ``model=`` name in URIs.
    model_name: ClassVar[str] = ""
    #: ``*IDN?`` vendor (case-insensitive) and model fields this driver serves.
    idn_vendor: ClassVar[str] = ""
    idn_models: ClassVar[tuple[str, ...]] = ()
    write_termination: ClassVar[str] = "\n"
    read_termination: ClassVar[str] = "\n"
    error_query: ClassVar[str] = "SYST:ERR?"
    #: Written (each checked) right after the identity, e.g. units and command-set mode.
    init_commands: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        resource_name: str,
        *,
        backend: str = "",
        timeout_s: float = 2.0,
        resource: VisaResource | None = None,
    ) -> None:
        super().__init__()
        self.resource_name = resource_name
        self.backend = backend
        self.timeout_s = timeout_s
        self._resource: VisaResource | None = resource
        self.simulated = backend.endswith("@sim")

    @classmethod
    def serves(cls, identity: InstrumentIdentity) -> bool:
        """True when this driver serves the instrument that answered ``identity``."""
        return identity.vendor.lower() == cls.idn_vendor.lower() and any(
            identity.model.upper() == m.upper() for m in cls.idn_models
        )

    # --- I/O ---------------------------------------------------------------------------------
    @property
    def _label(self) -> str:
        return f"{self.model_name} at {self.resource_name}"

    def _io(self, action: Callable[[VisaResource], Any], command: str) -> Any:
        resource = self._resource
        if resource is None:
            raise DeviceClosedError(f"{self._label} is closed")
        try:
            return action(resource)
        except Exception as exc:
            if _is_timeout(exc):
                raise LinkError(
                    f"{self._label}: no reply to {command!r} within {self.timeout_s:g} s "
                    "(timeout); check the cable, the termination and the instrument's state"
                ) from exc
            if _is_io_error(exc):
                self._lost(exc)
                raise LinkError(
                    f"{self._label}: connection lost during {command!r} ({exc}); "
                    "the instrument is now closed"
                ) from exc
            raise

    def _lost(self, exc: BaseException) -> None:
        log.error("%s: connection lost (%s); closing", self._label, exc)
        resource, self._resource = self._resource, None
        self._is_open = False
        if resource is not None:
            try:
                resource.close()
            except Exception as close_exc:
                log.debug("closing a lost resource failed: %s", close_exc)

    def _write(self, command: str) -> None:
        """Write ``command``, then drain the error queue (InstrumentError on any entry).

        Refused (SafetyLimitError, nothing sent) unless the safety gate is sending an admitted
        value or the command is one the driver sends itself: ``*RST``, ``*CLS`` and its
        ``init_commands`` (docs/safety.md §4). So even this private method is no way around
        the gate.
        """
        if self._gate.sending is None and command not in ("*RST", "*CLS", *self.init_commands):
            raise SafetyLimitError(
                f"{self._label}: {command!r} is not a gated write (set the role's property); "
                "nothing was sent"
            )
        log.debug("%s << %r", self._label, command)
        self._io(lambda r: r.write(command), command)
        self.check_errors(command)

    def _query(self, command: str) -> str:
        """Send a query and return the stripped reply.

        Only queries: every ``;``-separated part's header must end in ``?`` (``:WAV? MIN``), so a
        setting cannot be smuggled through a query (SafetyLimitError, nothing sent).
        """
        if not all(part.strip().split(" ", 1)[0].endswith("?") for part in command.split(";")):
            raise SafetyLimitError(
                f"{self._label}: {command!r} is not a query; settings go through the role's "
                "properties; nothing was sent"
            )
        log.debug("%s << %r", self._label, command)
        reply = str(self._io(lambda r: r.query(command), command)).strip()
        log.debug("%s >> %r", self._label, reply)
        return reply

    def _query_parsed(self, command: str, parse: Callable[[str], Any] = float) -> Any:
        reply = self._query(command)
        try:
            return parse(reply)
        except (TypeError, ValueError):
            pending = self.read_errors()
            detail = f"; error queue: {pending}" if pending else ""
            raise InstrumentError(
                f"{self._label}: reply {reply!r} to {command!r} is not a valid value{detail}",
                command=command,
            ) from None

    def read_errors(self) -> list[tuple[int, str]]:
        """Pop the error queue until it reports code 0 (at most MAX_ERROR_READS entries)."""
        errors: list[tuple[int, str]] = []
        for _ in range(MAX_ERROR_READS):
            reply = self._query(self.error_query)
            try:
                code, text = parse_error(reply)
            except ValueError:
                raise InstrumentError(
                    f"{self._label}: error-queue reply {reply!r} to {self.error_query!r} "
                    "does not parse as code,\"text\"",
                    command=self.error_query,
                ) from None
            if code == 0:
                return errors
            errors.append((code, text))
        log.warning("%s: error queue still not empty after %d reads", self._label, MAX_ERROR_READS)
        return errors

    def check_errors(self, command: str = "") -> None:
        """Raise InstrumentError for the first queued error (the others are logged)."""
        errors = self.read_errors()
        if not errors:
            return
        for code, text in errors[1:]:
            log.error("%s: further queued error %d %r after %r", self._label, code, text, command)
        code, text = errors[0]
        raise InstrumentError(
            f"{self._label} reported error {code} {text!r} after {command!r}",
            code=code,
            text=text,
            command=command,
        )

    def _preflight(self, quantity: str, value: Any) -> None:
        """Check ``value`` for ``quantity`` as its SCPI attribute would send it, sending nothing."""
        for klass in type(self).__mro__:
            for attr in vars(klass).values():
                if (
                    isinstance(attr, ScpiProperty)
                    and attr.set_command is not None
                    and attr.quantity == quantity
                ):
                    attr.preflight(self, value)
                    return

    # --- lifecycle hooks ---------------------------------------------------------------------
    def _open(self) -> InstrumentIdentity:
        if self._resource is None:
            self._resource = open_visa_resource(
                self.resource_name,
                self.backend,
                self.timeout_s,
                self.read_termination,
                self.write_termination,
            )
        try:
            reply = self._query("*IDN?")
            if not reply:
                raise LinkError(
                    f"{self._label}: empty reply to *IDN?; is an instrument answering at this "
                    "resource, with this termination?"
                )
            identity = InstrumentIdentity.parse(reply)
            if self.idn_models and not self.serves(identity):
                raise InstrumentError(
                    f"{self.resource_name} answered *IDN? with {identity.vendor},"
                    f"{identity.model}, which is not a {self.model_name} "
                    f"({self.idn_vendor} {'/'.join(self.idn_models)}); check model=",
                    command="*IDN?",
                )
            stale = self.read_errors()
            if stale:
                log.warning("%s: errors queued before open, discarded: %s", self._label, stale)
            for command in self.init_commands:
                self._write(command)
            self._after_open()
        except BaseException:
            self._close()
            raise
        return identity

    def _after_open(self) -> None:
        """Read what the driver caches (ranges); override in drivers."""

    def _close(self) -> None:
        resource, self._resource = self._resource, None
        if resource is not None:
            resource.close()

    def _reset(self) -> None:
        self._write("*RST")
        for command in self.init_commands:
            self._write(command)
        self._after_open()

    def _clear(self) -> None:
        self._write("*CLS")


def open_visa_resource(
    resource_name: str,
    backend: str,
    timeout_s: float,
    read_termination: str,
    write_termination: str,
) -> VisaResource:
    """Open ``resource_name`` through pyvisa with ``backend`` (``@py``, ``@ivi``, ``x@sim``)."""
    try:
        manager = pyvisa.ResourceManager(library_spec(backend))
    except (OSError, ValueError) as exc:
        raise LinkError(f"VISA backend {backend or 'default'!r} cannot be loaded: {exc}") from exc
    try:
        resource = manager.open_resource(
            resource_name,
            read_termination=read_termination,
            write_termination=write_termination,
            timeout=timeout_s * 1000.0,
        )
    except Exception as exc:
        raise LinkError(
            f"cannot open VISA resource {resource_name!r} with backend "
            f"{backend or 'default'!r}: {exc}"
        ) from exc
    return resource  # type: ignore[return-value]


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, pyvisa.errors.VisaIOError):
        return exc.error_code == pyvisa.constants.StatusCode.error_timeout
    return isinstance(exc, TimeoutError)


def _is_io_error(exc: BaseException) -> bool:
    return isinstance(
        exc, (pyvisa.errors.VisaIOError, pyvisa.errors.InvalidSession, OSError, EOFError)
    )


class ScpiSwitchedSource(ScpiInstrument):
    """Hooks shared by SCPI sources whose driver declares ``_output`` (on/off) and, for
    lasers, ``_power_dbm`` plus ``_power_min_dbm``/``_power_max_dbm`` read at open."""

    _output: Any
    _power_dbm: Any
    _power_min_dbm: float
    _power_max_dbm: float

    def _get_output(self) -> bool:
        return bool(self._output)

    def _set_output(self, enabled: bool) -> None:
        self._output = enabled

    def _get_power_dbm(self) -> float:
        return float(self._power_dbm)

    def _set_power_dbm(self, dbm: float) -> None:
        self._power_dbm = dbm

    def _power_range_dbm(self) -> tuple[float, float]:
        return self._power_min_dbm, self._power_max_dbm
