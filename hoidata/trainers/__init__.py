"""Training on TRL: recipes, data, the SFT / GRPO / DPO trainers, multi-GPU launch, LoRA merge."""
