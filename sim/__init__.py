"""Simulated hardware, installed as ``lumina_hal.sim``: emulators that let the real drivers
run unchanged without a bench. See docs/architecture.md.
"""
