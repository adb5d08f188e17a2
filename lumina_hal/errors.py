"""One exception hierarchy for the whole HAL, rooted at LuminaError.

Each class also derives from the closest builtin (ValueError, ConnectionError, ...) so code
that already catches those keeps working.
"""

from __future__ import annotations


class LuminaError(Exception):
    """Base of every error raised by lumina_hal."""


class ConfigurationError(LuminaError, ValueError):
    """A URI, parameter, preset or configuration file is wrong (nothing was opened or sent)."""


class InputError(LuminaError, ValueError):
    """An argument to a device call is wrong: shape, dtype, NaN/Inf, size (nothing was run)."""


class LinkError(LuminaError, ConnectionError):
    """The transport to a device failed: timeout, integrity error, lost connection."""


class DeviceError(LuminaError, RuntimeError):
    """The device itself reported an error (it answered, but refused or failed)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class SafetyLimitError(LuminaError, ValueError):
    """A value is outside a soft limit; it was checked before anything was sent."""


class DeviceClosedError(LuminaError, RuntimeError):
    """The device is closed; open it again (or use ``with``) before calling it."""


class UnsupportedOperationError(LuminaError, NotImplementedError):
    """This backend lacks the capability the call needs (see ``info.capabilities``)."""


class InstrumentError(DeviceError):
    """A lab instrument reported an error (its SCPI error queue) or sent an unusable reply.

    ``code`` is the SCPI error code (None when the reply itself was unusable), ``text`` the
    instrument's message and ``command`` the command that was being executed.
    """

    def __init__(
        self, message: str, code: int | None = None, text: str = "", command: str = ""
    ) -> None:
        super().__init__(message, code)
        self.text = text
        self.command = command


class OverRangeError(InstrumentError):
    """A measurement is above the instrument's current range (e.g. a power meter's 9.9E37)."""


class RecordError(ConfigurationError):
    """A file is not a readable run record: not one at all, or of a newer format version."""


class RecordDamagedError(RecordError):
    """A run record is damaged (checksum, framing or content); the message names where."""
