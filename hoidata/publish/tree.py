"""The repository tree, built locally: exactly what gets uploaded (``--dry-run`` stops here).

README.md                              dataset card: YAML (configs, dataset_info) + counts, config, examples
data/{split}-0000i-of-0000n.parquet    images embedded (original bytes), `datasets` Features metadata
assets/example-{k}.png                 a few rendered samples shown in the card
hoidata_manifest.json                  the dataset directory's manifest, verbatim
                                       (one ``hoidata_manifest-{split}.json`` per directory when several)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hoidata.errors import HoidataError
from hoidata.io.manifest import MANIFEST
from hoidata.publish.card import dataset_card
from hoidata.publish.embed import Embedder
from hoidata.publish.examples import render_example
from hoidata.publish.shards import ShardWriter, SplitStats, embedded_batches
from hoidata.publish.sizes import DEFAULT_MAX_SHARD_SIZE, human_size, parse_size
from hoidata.publish.source import Source, check_features, publish_features, shard_features
from hoidata.schemas.canonical import with_features


def _as_list(dataset_dirs: Path | str | Sequence[Path | str]) -> list[Path]:
    if isinstance(dataset_dirs, (str, os.PathLike)):
        return [Path(dataset_dirs)]
    return [Path(d) for d in dataset_dirs]


def _is_our_tree(path: Path) -> bool:
    return (path / "README.md").is_file() and any(path.glob("hoidata_manifest*.json"))


def _check_out(tree: Path, dirs: list[Path]) -> None:
    resolved = tree.resolve()
    for d in dirs:
        d = d.resolve()
        if resolved == d or resolved.is_relative_to(d) or d.is_relative_to(resolved):
            raise HoidataError("the output folder must lie outside the dataset directories", file=str(tree))
    if tree.exists() and (not tree.is_dir() or (any(tree.iterdir()) and not _is_our_tree(tree))):
        raise HoidataError(
            "output folder exists and is not a tree built by hoidata push: refusing to replace it",
            file=str(tree),
        )


def _check_splits(sources: list[Source]) -> None:
    """The directories must make one dataset: one schema, each split from one directory only."""
    first = sources[0]
    seen: dict[str, Path] = {}
    for src in sources:
        if not src.schema.remove_metadata().equals(first.schema.remove_metadata()):
            raise HoidataError(
                f"its columns differ from those of {first.path}: splits of one dataset share one schema",
                file=str(src.path),
            )
        for split in src.splits:
            if split in seen:
                raise HoidataError(f"split {split!r} also comes from {seen[split]}", file=str(src.path))
            seen[split] = src.path


def build_repo_tree(
    dataset_dirs: Path | str | Sequence[Path | str],
    tree_dir: Path | str,
    *,
    repo_id: str | None = None,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    examples: int = 3,
    image_root: Path | str | None = None,
    license: str | None = None,
) -> list[Path]:
    """Build the Hub repository tree for one or more dataset directories (one split each, usually
    train and test) into ``tree_dir``; returns the tree's files, relative to it, sorted.

    The tree is built next to ``tree_dir`` and swapped in at the end: a failed build leaves no
    half tree behind. An existing ``tree_dir`` is replaced only if an earlier build made it.
    The build is deterministic, so a re-run after an interrupted upload sends (almost) nothing.
    """
    dirs = _as_list(dataset_dirs)
    if not dirs:
        raise HoidataError("no dataset directory given")
    max_size = parse_size(max_shard_size)
    if examples < 0:
        raise HoidataError(f"--examples must be 0 or more, got {examples}")
    tree = Path(tree_dir)
    sources = [Source.open(d, image_root) for d in dirs]
    _check_out(tree, dirs)
    first = sources[0]
    feats = publish_features(shard_features(first.schema, first.manifest), first.schema)
    check_features(feats, first.schema, first.path)
    _check_splits(sources)
    schema = with_features(first.schema, feats)

    tree.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{tree.name}.", suffix=".partial", dir=tree.parent))
    try:
        (tmp / "data").mkdir()
        (tmp / "assets").mkdir()
        stats: list[SplitStats] = []
        rows_for_examples: list[dict[str, Any]] = []
        with ThreadPoolExecutor(min(16, (os.cpu_count() or 2) * 4)) as pool:
            embed = Embedder(pool)
            for src in sources:
                for split, files in src.splits.items():
                    writer = ShardWriter(tmp / "data", split, schema, src.leaves, max_size)
                    for batch in embedded_batches(src, files, schema, embed):
                        if len(rows_for_examples) < examples:
                            rows_for_examples += batch.slice(0, examples - len(rows_for_examples)).to_pylist()
                        writer.add(batch)
                    stats.append(writer.finish())
        rendered = [
            ex
            for k, row in enumerate(rows_for_examples)
            if (ex := render_example(row, k, tmp / "assets")) is not None
        ]
        if not rendered:
            (tmp / "assets").rmdir()
        manifest_names = (
            ["hoidata_manifest.json"]
            if len(sources) == 1
            else [f"hoidata_manifest-{'+'.join(s.splits)}.json" for s in sources]
        )
        for src, name in zip(sources, manifest_names, strict=True):
            shutil.copyfile(src.path / MANIFEST, tmp / name)
        card = dataset_card(sources, manifest_names, stats, feats, rendered, repo_id, license)
        card.save(tmp / "README.md")
        if tree.exists():
            shutil.rmtree(tree)
        os.replace(tmp, tree)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(p.relative_to(tree) for p in tree.rglob("*") if p.is_file())


def format_tree(tree_dir: Path | str, files: Sequence[Path]) -> str:
    """The tree as lines of 'size  path', with a total, for the command line."""
    tree = Path(tree_dir)
    sizes = [(tree / f).stat().st_size for f in files]
    width = len(human_size(sum(sizes)))
    lines = [f"  {human_size(s):>{width}}  {f.as_posix()}" for f, s in zip(files, sizes, strict=True)]
    lines.append(f"  {human_size(sum(sizes)):>{width}}  total, {len(files)} files")
    return "\n".join(lines)
