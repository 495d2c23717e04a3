"""SFT dataset builders: referring, grounding, detection, chain-of-focus and spatial-linking."""
