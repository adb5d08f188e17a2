"""An independent PHL1 v1.2 peer (v1.1 on request), from docs/protocol.md only (test code).

``wire``: frames, COBS and CRC written by hand (no import from lumina_hal);
``firmware``: a device side the real host driver runs against; ``host``: a host-side frame
builder that drives our emulator. Nothing here imports the driver's framing or messages.
"""
