"""Lab-instrument drivers (laser, power meter, TEC) over pyvisa; see docs/instruments.md."""
