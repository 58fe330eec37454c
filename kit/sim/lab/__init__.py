"""The simulated lab: small numpy networks standing in for model families, behind the local server.

`Lab(data_dir)` implements `kit.sim.engine.Engine`. See docs/sim-lab.md for what it models and what it does not.
"""

from kit.sim.lab.lab import Lab

__all__ = ["Lab"]
