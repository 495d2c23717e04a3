"""Stages: each is a function from a dataset directory (or raw files) to a dataset directory."""
