"""The simulated FPGA board: PHL1 firmware emulator, fault injection, pty/TCP servers,
the ``fpgasim://`` pyserial URL handler and the ``fpga+sim://`` device."""
