"""Training recipes: one YAML file per run, command-line overrides, the effective recipe saved.

```yaml
method: grpo                      # sft | grpo | dpo
model: Qwen/Qwen2.5-VL-7B-Instruct
profile: qwen2.5-vl               # box frame, answer format, tool template, pixel budget
max_pixels: 1003520               # optional: the profile's budget otherwise (keep it = inference's)
data: [data/hico-train-boxes]     # dataset directories or Hub ids
task: referring                   # grpo on a boxes dataset: which questions to ask
lora: {r: 16, alpha: 32, dropout: 0.05, target_modules: all-linear}   # null: full fine-tuning
freeze_vision: true
rewards: {accuracy: 1.0, format: 0.5, tool: 0.5, spatial: 0.5}       # grpo
tools: true                       # grpo: the HOI tool environment (or a list, e.g. [zoom_in])
spatial_linking: {heads: 8, mlp_ratio: 0.5, attn_dim: null, identity_init: false}  # null: off
imagine_cache: data/imagine-sd    # grpo: the imagine tool answers from `hoidata imagine`'s views
data_mix: [0.5, 0.5]              # sample the data directories in these shares (e.g. DPO stage 2)
trainer: {learning_rate: 5.0e-7, num_generations: 4, output_dir: runs/grpo}  # TRL config fields
```
Overrides are ``--key value`` pairs with dotted keys (``--trainer.learning_rate 1e-5``); values
are read as YAML, so numbers, booleans and lists work as typed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from hoidata.errors import HoidataError
from hoidata.models.spatial_config import SpatialLinkingConfig
from hoidata.rewards import RewardConfig
from hoidata.tools.environment import TOOL_NAMES

METHODS = ("sft", "grpo", "dpo")


@dataclass
class Lora:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"


@dataclass
class SpatialLinkingRecipe:
    """The spatial-linking module trained with the model (:mod:`hoidata.models.spatial_linking`)."""

    heads: int = SpatialLinkingConfig.heads
    mlp_ratio: float = SpatialLinkingConfig.mlp_ratio
    attn_dim: int | None = SpatialLinkingConfig.attn_dim  # None: the language model's hidden size
    identity_init: bool = SpatialLinkingConfig.identity_init


@dataclass
class Recipe:
    method: str
    model: str
    data: list[str]
    profile: str = "qwen2.5-vl"
    min_pixels: int | None = None
    max_pixels: int | None = None
    task: str = "referring"
    lora: Lora | None = None
    freeze_vision: bool = True
    rewards: dict[str, float] = field(default_factory=dict)
    tools: bool | list[str] = True  # grpo: all tools, none, or these (as gen-cot --tools offered them)
    max_samples: int | None = None  # first samples only (trials, tests)
    spatial_linking: SpatialLinkingRecipe | None = None  # null: no module
    imagine_cache: str | None = None  # grpo: an imagine cache the tool answers from (hoidata imagine)
    imagine_backend: str = "context"  # grpo: regions the cache lacks: context (crops) or none (a tool error)
    data_mix: list[float] | None = None  # shares of the data directories (interleaved); null: concatenated
    trainer: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @property
    def output_dir(self) -> Path:
        return Path(self.trainer.get("output_dir") or f"runs/{self.method}")


def load_recipe(
    path: Path | str | None, overrides: list[str] | dict[str, Any] | None = None, **fixed: Any
) -> Recipe:
    """The recipe in ``path`` (if any), with ``overrides`` applied; ``fixed`` keys (from the command,
    e.g. ``method``) fill the recipe where it is silent and must agree where it is not."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise HoidataError("file not found", file=str(p))
        try:
            raw = _numbers(yaml.safe_load(p.read_text()) or {})
        except yaml.YAMLError as e:
            raise HoidataError(f"not valid YAML: {str(e).splitlines()[0]}", file=str(p)) from None
        if not isinstance(raw, dict):
            raise HoidataError("a recipe is a YAML mapping", file=str(p))
    pairs = overrides.items() if isinstance(overrides, dict) else _pairs(overrides or [])
    for key, value in pairs:
        _set(raw, key, value)
    for key, value in fixed.items():
        if value is None:
            continue
        if raw.get(key) not in (None, value):
            raise HoidataError(f"the recipe says {key}: {raw[key]}, the command says {value}", file=str(path))
        raw[key] = value
    return _build(raw, str(path) if path else "recipe")


def _pairs(tokens: list[str]) -> list[tuple[str, Any]]:
    """``["--trainer.learning_rate", "1e-5", "--tools", "false"]`` → typed pairs (``--k=v`` too)."""
    out = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            raise HoidataError(f"override {token!r}: expected --key value")
        key, eq, value = token[2:].partition("=")
        if not eq:
            if i + 1 >= len(tokens):
                raise HoidataError(f"override --{key} has no value")
            value = tokens[i + 1]
            i += 1
        out.append((key.replace("-", "_"), _value(value)))
        i += 1
    return out


def _value(text: str) -> Any:
    try:
        return _numbers(yaml.safe_load(text))
    except yaml.YAMLError:
        return text


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _numbers(value: Any) -> Any:
    """YAML 1.1 reads ``1e-5`` as a string; everyone writing a learning rate means a number."""
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def _set(raw: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = raw
    for k in keys[:-1]:
        child = node.get(k)
        if not isinstance(child, dict):
            child = {}
            node[k] = child
        node = child
    node[keys[-1]] = value


def _build(raw: dict[str, Any], where: str) -> Recipe:
    known = {f.name for f in fields(Recipe)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise HoidataError(f"unknown recipe keys {unknown}; known: {sorted(known)}", file=where)
    for key in ("method", "model", "data"):
        if not raw.get(key):
            raise HoidataError(f"the recipe needs {key!r}", file=where, field=key)
    if raw["method"] not in METHODS:
        raise HoidataError(f"method must be one of {', '.join(METHODS)}, got {raw['method']!r}", file=where)
    data = raw["data"]
    raw["data"] = [str(d) for d in (data if isinstance(data, list) else [data])]
    lora = raw.get("lora")
    if lora is not None:
        if lora is True:
            lora = {}
        if not isinstance(lora, dict):
            raise HoidataError(
                "lora must be a mapping (r, alpha, dropout, target_modules) or null", file=where
            )
        bad = sorted(set(lora) - {f.name for f in fields(Lora)})
        if bad:
            raise HoidataError(f"unknown lora keys {bad}", file=where, field="lora")
        raw["lora"] = Lora(**lora)
    rewards = raw.get("rewards") or {}

    bad = (
        sorted(set(rewards) - set(RewardConfig.__dataclass_fields__)) if isinstance(rewards, dict) else ["?"]
    )
    if bad:
        raise HoidataError(
            f"unknown reward settings {bad}; known: {sorted(RewardConfig.__dataclass_fields__)}",
            file=where,
            field="rewards",
        )
    tools = raw.get("tools", True)

    if not isinstance(tools, bool) and (
        not isinstance(tools, list) or not tools or not set(map(str, tools)) <= set(TOOL_NAMES)
    ):
        raise HoidataError(
            f"tools must be true, false or a list of {', '.join(TOOL_NAMES)}; got {tools!r}",
            file=where,
            field="tools",
        )
    raw["spatial_linking"] = _spatial_linking(raw.get("spatial_linking"), where)
    mix = raw.get("data_mix")
    if mix is not None:
        ok = isinstance(mix, list) and len(mix) == len(raw["data"])
        if not ok or not all(isinstance(w, int | float) and w > 0 for w in mix):
            raise HoidataError(
                f"data_mix needs one positive share per data entry ({len(raw['data'])}), got {mix!r}",
                file=where,
                field="data_mix",
            )
        raw["data_mix"] = [float(w) / sum(mix) for w in mix]
    if raw.get("imagine_backend", "context") not in ("context", "none"):
        raise HoidataError(
            "imagine_backend must be context or none (generative views come from an imagine cache)",
            file=where,
            field="imagine_backend",
        )
    if not isinstance(raw.get("trainer", {}), dict):
        raise HoidataError("trainer must be a mapping of TRL config fields", file=where, field="trainer")
    return Recipe(**raw)


def _spatial_linking(value: Any, where: str) -> SpatialLinkingRecipe | None:
    """``null``/``false``: off; ``true`` or a mapping of :class:`SpatialLinkingRecipe` fields: on."""
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise HoidataError(
            "spatial_linking must be a mapping (heads, mlp_ratio, attn_dim, identity_init), true or null",
            file=where,
            field="spatial_linking",
        )
    bad = sorted(set(value) - {f.name for f in fields(SpatialLinkingRecipe)})
    if bad:
        raise HoidataError(f"unknown spatial_linking keys {bad}", file=where, field="spatial_linking")
    settings = SpatialLinkingRecipe(**value)
    if not isinstance(settings.identity_init, bool):
        raise HoidataError("identity_init must be true or false", file=where, field="spatial_linking")
    try:  # the shape checks, at any hidden size the attention width divides
        SpatialLinkingConfig(
            settings.attn_dim or settings.heads, settings.heads, settings.mlp_ratio, settings.attn_dim
        )
    except (HoidataError, TypeError) as e:
        raise HoidataError(str(e), file=where, field="spatial_linking") from None
    return settings
