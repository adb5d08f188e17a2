"""Hardware backends, installed as ``lumina_hal.drivers``.

Each backend is a PhotonicDevice subclass (or an instrument role implementation) registered
under a URI scheme in the ``lumina_hal.drivers`` entry-point group. See docs/architecture.md.
"""
