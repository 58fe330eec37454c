"""slkit: subliminal-learning experiments, rehearsed offline, run through hosted fine-tuning APIs."""

__version__ = "0.1.0"
