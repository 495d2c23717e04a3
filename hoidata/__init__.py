"""hoidata: human-object-interaction annotations to vision-language training data."""

__version__ = "0.1.0"
