"""The HOI tool environment (detect, relate, zoom in, imagine) and its backends, shared by CoT
generation and GRPO."""
