"""The names of the environment's tools, in a module that imports nothing, so that the CLI and the
data stages can name the tools without loading the environment."""

# In TRL's order (``inspect.getmembers`` sorts by name), so the tool list in SFT data renders the same
# prompt text as the list TRL builds during GRPO.
TOOL_NAMES = ("analyze_spatial", "detect_humans", "detect_objects", "imagine", "zoom_in")
