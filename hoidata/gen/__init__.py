"""The multi-turn generation loop (tool calls answered by the environment) and its rollout records."""
