"""The FPGA backend: the PHL1 wire protocol (docs/protocol.md) and its host driver."""
