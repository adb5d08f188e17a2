"""The runs room: run records, scripts, plans, sweeps and the demo workload (docs/records.md)."""
