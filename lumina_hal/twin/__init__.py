"""The twin room: the digital twin of a photonic tensor core.

Its configuration and presets (``config``, ``physics``), the one chip model every simulated
backend holds (``chip.TwinChip``), the numpy reference engine that is the test oracle
(``reference``), the cffi kernel wrapper (``kernel``), the device behind ``mock://``
(``device.MockDevice``, and ``device.twin_from_snapshot``) and the preset-fitting tool
(``preset_fit``). Imports only the core.
"""
