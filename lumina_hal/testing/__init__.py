"""The testing room: the pytest plugin, the device conformance suite, ``selftest`` and the
expected-protocol helper for instrument-driver authors (docs/hil.md, docs/conformance.md)."""
