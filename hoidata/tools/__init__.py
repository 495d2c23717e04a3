"""The HOI tool environment's parts: zoom-in crops and spatial relations computed from boxes."""
