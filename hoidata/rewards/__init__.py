"""Rewards shared by generation (verification), filtering (preferences) and GRPO (reward_funcs)."""

from hoidata.rewards.hierarchical import COMPONENTS, RewardConfig, Scores, reward_funcs, score
from hoidata.rewards.targets import Targets

__all__ = ["COMPONENTS", "RewardConfig", "Scores", "Targets", "reward_funcs", "score"]
