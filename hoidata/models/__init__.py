"""Model helpers: tiny offline Qwen-VL checkpoints for tests and demos."""
