"""AquaCIS Edge: the one console script assembling every component's commands."""

__version__ = "0.1.0"
