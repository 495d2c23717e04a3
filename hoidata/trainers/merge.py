"""Fold a LoRA adapter into its base model: one ordinary checkpoint that vLLM and transformers serve.

A LoRA run saves only the adapter (plus the processor). Serving, evaluation and a later full
fine-tune want plain weights, so ``merge_lora`` loads the base, applies the adapter, merges
``W + BA`` into each target layer, and writes the merged model with the processor the run trained
with (the adapter directory's, which carries any chat-template change; the base's otherwise), and
the run's spatial-linking module files, if any, beside it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from hoidata.errors import HoidataError
from hoidata.models.spatial_config import CONFIG_FILE, WEIGHTS_FILE

# What a processor is made of on disk (transformers 5 and the older split layout).
PROCESSOR_FILES = (
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
_PROCESSOR_MARKERS = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
_ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
SPATIAL_FILES = (WEIGHTS_FILE, CONFIG_FILE)


def read_adapter_config(adapter_dir: Path | str) -> dict[str, Any]:
    """The adapter's ``adapter_config.json``, or a one-line error if the directory is not a LoRA adapter."""
    d = Path(adapter_dir)
    if not d.is_dir():
        raise HoidataError("adapter directory not found", file=str(d))
    cfg_path = d / "adapter_config.json"
    if not cfg_path.is_file():
        raise HoidataError(
            "not a LoRA adapter: no adapter_config.json (a merged or full model?)", file=str(d)
        )
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise HoidataError(f"not valid JSON: {e}", file=str(cfg_path)) from None
    if not isinstance(cfg, dict) or cfg.get("peft_type") != "LORA":
        got = cfg.get("peft_type") if isinstance(cfg, dict) else None
        raise HoidataError(f"not a LoRA adapter: peft_type is {got!r}", file=str(cfg_path))
    if not any((d / name).is_file() for name in _ADAPTER_WEIGHTS):
        raise HoidataError(f"adapter has no weights ({' or '.join(_ADAPTER_WEIGHTS)})", file=str(d))
    return cfg


def merge_lora(
    adapter_dir: Path | str,
    out_dir: Path | str,
    *,
    base_model: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write base model + LoRA adapter, merged, with the processor, to ``out_dir``; returns ``out_dir``.

    ``base_model`` (a Hub id or directory) defaults to the adapter's ``base_model_name_or_path``. The
    merged weights keep the base checkpoint's dtype. ``out_dir`` must be empty or absent unless
    ``overwrite``, so a merge never mixes into another checkpoint's files.
    """
    adapter = Path(adapter_dir)
    cfg = read_adapter_config(adapter)
    base = base_model or cfg.get("base_model_name_or_path")
    if not base:
        raise HoidataError(
            "adapter names no base model; pass base_model", file=str(adapter / "adapter_config.json")
        )
    out = Path(out_dir)
    if out.resolve() == adapter.resolve():
        raise HoidataError("out_dir must differ from the adapter directory", file=str(out))
    if out.exists() and not out.is_dir():
        raise HoidataError("out_dir is a file", file=str(out))
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise HoidataError("out_dir is not empty (pass overwrite to write into it)", file=str(out))

    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    try:
        model = AutoModelForImageTextToText.from_pretrained(base, dtype="auto")
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HoidataError(f"cannot load base model {base!r}: {first}") from None
    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HoidataError(f"adapter does not fit base model {base!r}: {first}", file=str(adapter)) from None
    with torch.no_grad():
        merged = peft_model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    _save_processor(adapter if _has_processor(adapter) else base, out)
    for name in SPATIAL_FILES:  # a spatial-linking module is no adapter: it stays a file of its own
        if (adapter / name).is_file():
            shutil.copy2(adapter / name, out / name)
    return out


def _has_processor(d: Path) -> bool:
    return any((d / name).is_file() for name in _PROCESSOR_MARKERS)


def _save_processor(source: Path | str, out: Path) -> None:
    """Copy the processor files byte for byte from a directory; load and save one from the Hub."""
    src = Path(source)
    if src.is_dir():
        if not _has_processor(src):
            raise HoidataError("no processor or tokenizer files to copy", file=str(src))
        for name in PROCESSOR_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, out / name)
        return
    from transformers import AutoProcessor

    AutoProcessor.from_pretrained(str(source)).save_pretrained(out)
