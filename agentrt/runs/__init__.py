"""Driving runs: their lifecycle (which status may follow which), the lease that lets one
process at a time drive a run, and the driver that carries a run from step to step."""
