"""Seeded fuzzing: a short run inside `make test`, a long one with `make fuzz` (HOIDATA_FUZZ=long)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "short", max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
settings.register_profile(
    "long", max_examples=5000, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
settings.load_profile("long" if os.environ.get("HOIDATA_FUZZ") == "long" else "short")
