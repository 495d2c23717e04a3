"""Model profiles: what a model family needs of the data (resize rule, box frame and text, answers)."""

from hoidata.profiles.profile import PROFILES, Profile, get_profile

__all__ = ["PROFILES", "Profile", "get_profile"]
