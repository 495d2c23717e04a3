"""Training data in the shape each TRL trainer reads, from hoidata datasets or the Hub.

- SFT: ``images`` + ``messages`` (+ ``tools``): a ``build-sft`` or ``filter sft`` dataset as is.
- GRPO: a conversational ``prompt`` and ``images``, plus ``pairs``, ``task``, ``width``, ``height``
  (the rewards' ground truth and the tool environment's scene): from a ``boxes`` dataset (the
  ``build-sft`` questions for ``task``) or an SFT dataset (its first user turn).
- DPO: ``prompt``, ``chosen``, ``rejected``, ``images``: a ``filter prefs`` dataset as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hoidata.errors import HoidataError
from hoidata.io import open_dataset, read_manifest
from hoidata.io.images import open_image
from hoidata.pipelines.gen_cot import prompt_rows, question
from hoidata.profiles import Profile

NEEDS = {
    "sft": ("images", "messages"),
    "grpo": ("prompt", "images", "pairs", "task", "width", "height"),
    "dpo": ("prompt", "chosen", "rejected", "images"),
}


def load_for(
    method: str,
    paths: list[str],
    *,
    task: str = "referring",
    max_samples: int | None = None,
    resize_to: Profile | None = None,
    mix: list[float] | None = None,
    seed: int = 0,
) -> Any:
    """One ``datasets.Dataset`` for ``method`` from every path, columns checked: concatenated, or
    with ``mix`` interleaved in those shares (seeded; smaller parts are repeated until every part has
    been seen whole, so no row of any part is left out).

    ``resize_to``: GRPO prompts from hoidata datasets get their images pre-resized to the profile's
    ``smart_resize`` size, so that a processor of the same budget leaves them as they are (the
    vLLM-in-training mitigation: both processors then see the same pixels)."""
    import datasets

    parts = [_one(method, p, task, resize_to) for p in paths]
    if mix is not None and len(parts) > 1:
        keep = set.intersection(*(set(p.column_names) for p in parts))
        parts = [p.select_columns([c for c in p.column_names if c in keep]) for p in parts]
        ds = datasets.interleave_datasets(
            parts, probabilities=mix, seed=seed, stopping_strategy="all_exhausted"
        )
    else:
        ds = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    if max_samples is not None:
        ds = ds.select(range(min(max_samples, len(ds))))
    missing = [c for c in NEEDS[method] if c not in ds.column_names]
    if missing:
        raise HoidataError(
            f"{method} needs columns {list(NEEDS[method])}; the data lacks {missing} (has {ds.column_names})",
            file=", ".join(paths),
        )
    if not len(ds):
        raise HoidataError("the training data is empty", file=", ".join(paths))
    keep = [c for c in (*NEEDS[method], "tools", "sample_id") if c in ds.column_names]
    return ds.select_columns(keep)


def _one(method: str, path: str, task: str, resize_to: Profile | None) -> Any:
    p = Path(path)
    if not (p / "manifest.json").is_file():
        import datasets

        try:  # a Hub id, or a folder of Parquet files
            return datasets.load_dataset(path, split="train")
        except Exception as e:
            raise HoidataError(f"cannot load as a dataset: {type(e).__name__}: {e}", file=path) from None
    stage = read_manifest(p).stage
    if method == "grpo" and stage in ("boxes", "build-sft"):
        return _grpo_prompts(p, task, resize_to)
    return open_dataset(p)


def _grpo_prompts(path: Path, task: str, resize_to: Profile | None) -> Any:
    """The questions gen-cot asks, and the ground truth the rewards need."""
    import datasets

    samples, _, root = prompt_rows(path, task)
    rows = [
        {
            "sample_id": r["sample_id"],
            "prompt": [{"role": "user", "content": question(r)}],
            "images": [_sized(open_image(r["images"][0], root), resize_to)],
            "pairs": r["pairs"],
            "task": r["task"],
            "width": r["width"],
            "height": r["height"],
        }
        for r in samples
    ]
    return datasets.Dataset.from_list(rows)


def _sized(image: Any, profile: Profile | None) -> Any:
    if profile is None:
        return image
    from PIL import Image

    rw, rh = profile.resized([image.width], [image.height])
    size = (int(rw[0]), int(rh[0]))
    return image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)
