"""The demo: synthetic HOI scenes hoidata draws itself, and the whole chain run on them."""

from hoidata.demo.run import ColdStart, cold_start, run_demo
from hoidata.demo.scenes import make_raw, one_scene

__all__ = ["ColdStart", "cold_start", "make_raw", "one_scene", "run_demo"]
