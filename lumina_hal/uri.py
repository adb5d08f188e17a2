"""Parse device URIs: ``scheme://[host[:port]][/path][?key=value&...]``.

A location holding ``::`` is a VISA resource name and is kept verbatim as ``host``.

The query becomes a dict of raw strings; the registry types them against the driver's
parameters. Repeated or valueless keys are errors, never silently merged or ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from lumina_hal.errors import ConfigurationError


@dataclass(frozen=True)
class DeviceURI:
    """A parsed device URI. ``host``/``port`` for network links, ``path`` for device files."""

    uri: str
    scheme: str
    host: str = ""
    port: int | None = None
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)

    @property
    def location(self) -> str:
        """Everything between ``scheme://`` and ``?``: what a driver connects to."""
        hostport = self.host + (f":{self.port}" if self.port is not None else "")
        return hostport + self.path


def parse_uri(uri: str) -> DeviceURI:
    """Split ``uri`` into scheme, host, port, path and query; ConfigurationError if malformed."""
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigurationError(f"device URI must be a non-empty string, got {uri!r}")
    text = uri.strip()
    if "://" not in text:
        raise ConfigurationError(
            f"device URI {uri!r} has no scheme; expected 'scheme://...', e.g. 'mock://?rows=8'"
        )
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # e.g. an unbalanced '[' of an IPv6 host
        raise ConfigurationError(f"device URI {uri!r} is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise ConfigurationError(f"device URI {uri!r} has an empty scheme")
    if parts.fragment:
        raise ConfigurationError(f"device URI {uri!r}: fragments ('#...') are not supported")
    if "::" in parts.netloc + parts.path:
        # A VISA resource (visa://USB0::0x1313::0x8078::P0009368::INSTR): kept verbatim.
        host, port = unquote(parts.netloc), None
    else:
        host = parts.hostname or ""
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigurationError(f"device URI {uri!r}: bad port ({exc})") from None
    query: dict[str, str] = {}
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    for key, value in pairs:
        if key in query:
            raise ConfigurationError(f"device URI {uri!r}: parameter {key!r} is given twice")
        if value == "":
            raise ConfigurationError(f"device URI {uri!r}: parameter {key!r} has no value")
        query[key] = value
    return DeviceURI(
        uri=text,
        scheme=scheme,
        host=host,
        port=port,
        path=unquote(parts.path),
        query=query,
    )
