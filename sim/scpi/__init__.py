"""Simulated SCPI instruments: a SCPI engine, models of the laser, power meter and TEC,
and a TCP server that pyvisa-py talks to (docs/instrument-sim.md)."""
