"""What a spatial-linking module is, without torch: its settings, its size, its files.

The module's size follows from the language model's hidden size ``d``, the attention width ``a``
(``attn_dim``, ``d`` by default) and the refine MLP's width ``h = round(mlp_ratio · d)``:

    parameters = 4·d·a + 3·a      query, key, value (d → a) and output (a → d) projections
               + 2·d·h + h        refine MLP d → h → d
               + 8·d              the two output biases, three LayerNorms (query, patches, MLP input)

:func:`parameter_count` is that formula; a test holds it equal to the module built from a config.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from hoidata.errors import HoidataError

WEIGHTS_FILE = "spatial_linking.safetensors"
CONFIG_FILE = "spatial_linking.json"
FRAMES = ("relative-1000", "resized-pixels")  # the profiles' box frames (hoidata.profiles.BoxFrame)

# hidden sizes of the released checkpoints (text_config.hidden_size in their config.json)
HIDDEN_SIZES = {"Qwen2.5-VL-3B": 2048, "Qwen2.5-VL-7B": 3584, "Qwen3-VL-8B": 4096}


@dataclass(frozen=True)
class SpatialLinkingConfig:
    """The module's shape and how it reads boxes; saved beside its weights as ``spatial_linking.json``."""

    hidden_size: int  # the language model's; queries, patches and the output live there
    heads: int = 8
    mlp_ratio: float = 0.5  # refine MLP width / hidden size
    attn_dim: int | None = None  # attention width (None: the hidden size)
    identity_init: bool = False  # start as the identity (zero output and last MLP layer); else Xavier
    box_frame: str = "resized-pixels"  # how the boxes in the text are written: the profile's frame
    patch_size: int = 14  # the vision tower's patch, and its merge: a merged cell is patch · merge pixels
    merge_size: int = 2

    def __post_init__(self) -> None:
        if self.box_frame not in FRAMES:
            raise HoidataError(f"spatial linking: box_frame must be one of {', '.join(FRAMES)}")
        for name in ("hidden_size", "heads", "patch_size", "merge_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise HoidataError(f"spatial linking: {name} must be a positive integer, got {value!r}")
        if not self.mlp_ratio > 0:
            raise HoidataError(f"spatial linking: mlp_ratio must be positive, got {self.mlp_ratio}")
        if self.inner_dim % self.heads:
            raise HoidataError(
                f"spatial linking: the attention width {self.inner_dim} must divide by heads ({self.heads})"
            )

    @property
    def inner_dim(self) -> int:
        return self.attn_dim or self.hidden_size

    @property
    def mlp_dim(self) -> int:
        return max(1, round(self.mlp_ratio * self.hidden_size))

    @property
    def cell_pixels(self) -> int:
        """Pixels of the resized image one merged grid cell (one visual token) covers, per side."""
        return self.patch_size * self.merge_size

    def save(self, directory: Path | str) -> Path:
        path = Path(directory) / CONFIG_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: Path | str) -> SpatialLinkingConfig:
        path = Path(directory) / CONFIG_FILE
        if not path.is_file():
            raise HoidataError(f"no {CONFIG_FILE} beside {WEIGHTS_FILE}", file=str(Path(directory)))
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise HoidataError(f"not valid JSON: {e}", file=str(path)) from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known) if isinstance(raw, dict) else ["?"]
        if unknown:
            raise HoidataError(f"unknown spatial-linking settings {unknown}", file=str(path))
        return cls(**raw)


def parameter_count(
    hidden_size: int, heads: int = 8, mlp_ratio: float = 0.5, attn_dim: int | None = None
) -> int:
    """Trainable parameters of a module at this hidden size (the formula in the module docstring)."""
    cfg = SpatialLinkingConfig(hidden_size, heads, mlp_ratio, attn_dim)
    d, a, h = cfg.hidden_size, cfg.inner_dim, cfg.mlp_dim
    return 4 * d * a + 3 * a + 2 * d * h + h + 8 * d


def has_spatial_linking(directory: Path | str) -> bool:
    """Whether a run or model directory carries a spatial-linking module."""
    return (Path(directory) / WEIGHTS_FILE).is_file()


def settings_text(cfg: SpatialLinkingConfig) -> str:
    """One line for logs: size and shape."""
    count = parameter_count(cfg.hidden_size, cfg.heads, cfg.mlp_ratio, cfg.attn_dim)
    return (
        f"spatial linking: {count:,} parameters (hidden {cfg.hidden_size}, attention {cfg.inner_dim} "
        f"in {cfg.heads} heads, MLP {cfg.mlp_dim}, {'identity' if cfg.identity_init else 'Xavier'} init)"
    )


def describe_sizes(heads: int = 8, mlp_ratio: float = 0.5, attn_dim: int | None = None) -> dict[str, int]:
    """Parameter counts at the released checkpoints' hidden sizes (no download: the sizes are known)."""
    return {name: parameter_count(d, heads, mlp_ratio, attn_dim) for name, d in HIDDEN_SIZES.items()}


def config_from_model(model_config: Any, box_frame: str, **settings: Any) -> SpatialLinkingConfig:
    """The module's config for a transformers Qwen2.5-VL / Qwen3-VL config (``text_config`` and
    ``vision_config``) and the profile's box frame; ``settings``: heads, mlp_ratio, attn_dim, identity_init."""
    text = getattr(model_config, "text_config", model_config)
    vision = getattr(model_config, "vision_config", None)
    if vision is None or not hasattr(vision, "spatial_merge_size"):
        raise HoidataError(
            f"spatial linking attaches to Qwen2.5-VL / Qwen3-VL models; {type(model_config).__name__} has "
            "no vision merger"
        )
    return SpatialLinkingConfig(
        hidden_size=int(text.hidden_size),
        box_frame=box_frame,
        patch_size=int(vision.patch_size),
        merge_size=int(vision.spatial_merge_size),
        **settings,
    )


def check_frame(cfg: SpatialLinkingConfig, profile_name: str, profile_frame: str) -> None:
    """A module trained on one box frame reads boxes in that frame only: refuse another profile's."""
    if cfg.box_frame != str(profile_frame):
        raise HoidataError(
            f"the spatial-linking module reads boxes in {cfg.box_frame}; profile {profile_name} writes "
            f"{profile_frame}",
            field="profile",
        )
