"""``hoidata push``: publish dataset directories to the Hugging Face Hub as a `datasets`-ready repo.

The repository tree is built locally first, and it is exactly what gets uploaded (``--dry-run`` stops
there), so everything about a publication can be checked offline:

    README.md                              dataset card: YAML (configs, dataset_info) + counts, config, examples
    data/{split}-0000i-of-0000n.parquet    images embedded (original bytes), `datasets` Features metadata
    assets/example-{k}.png                 a few rendered samples shown in the card
    hoidata_manifest.json                  the dataset directory's manifest, verbatim
                                           (one ``hoidata_manifest-{split}.json`` per directory when several)

Shards are rewritten in row batches (bounded memory) and re-cut by a maximum size; the build is
deterministic, so re-running an interrupted push produces the same bytes and the Hub skips what it has.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from PIL import Image

from hoidata import __version__
from hoidata.errors import HoidataError
from hoidata.io.dataset_dir import MANIFEST, Manifest, read_manifest
from hoidata.io.images import safe_relative_path
from hoidata.schemas.canonical import with_features

DEFAULT_MAX_SHARD_SIZE = 500 * 10**6  # the `datasets` push_to_hub default
ROW_GROUP_BYTES = 100 * 10**6  # uncompressed row-group cap: what `datasets` aims for (random access)
READ_ROWS = 64  # rows read per batch: with embedded images, a batch is a few tens of MB at most
EXAMPLE_SIDE = 640  # longest side of a rendered example, in pixels
SHARD_NAME = re.compile(r"^data/(?P<split>\w+(?:\.\w+)*)-\d{5}-of-\d{5}\.parquet$")
CONVERSATION_COLUMNS = ("messages", "prompt", "completion", "chosen", "rejected")
SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def parse_size(size: str | int) -> int:
    """'500MB', '1.5GB', '64MiB' or a number of bytes → bytes (decimal units, as `datasets` reads them)."""
    if isinstance(size, int):
        value = size
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)?\s*", size.upper())
        if not m:
            raise HoidataError(f"--max-shard-size must look like 500MB or 2GB, got {size!r}")
        value = int(float(m.group(1)) * SIZE_UNITS[m.group(2) or ""])
    if value < 1:
        raise HoidataError(f"--max-shard-size must be positive, got {size!r}")
    return value


def human_size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


# --------------------------------------------------------------------------- sources


def _is_image_struct(t: pa.DataType) -> bool:
    """The `datasets` Image storage: struct<bytes: binary, path: string>."""
    return (
        pa.types.is_struct(t)
        and {t.field(i).name for i in range(t.num_fields)} == {"bytes", "path"}
        and pa.types.is_binary(t.field("bytes").type)
        and pa.types.is_string(t.field("path").type)
    )


def _is_image_list(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and _is_image_struct(t.value_type)


@dataclass
class _Source:
    """One dataset directory to publish: its manifest, shards per split and image root."""

    path: Path
    manifest: Manifest
    splits: dict[str, list[Path]]
    schema: pa.Schema
    leaves: list[str]  # Parquet leaf column paths, for per-column writer options
    image_root: Path | None

    @classmethod
    def open(cls, path: Path, image_root: Path | str | None) -> _Source:
        manifest = read_manifest(path)
        splits: dict[str, list[Path]] = {}
        for shard in manifest.shards:
            m = SHARD_NAME.match(shard.get("path", ""))
            if not m:
                raise HoidataError(
                    f"unexpected shard name {shard.get('path')!r} (want data/SPLIT-00000-of-00001.parquet)",
                    file=str(path / MANIFEST),
                )
            file = path / shard["path"]
            if not file.is_file():
                raise HoidataError("shard listed in the manifest is missing", file=str(file))
            splits.setdefault(m.group("split"), []).append(file)
        if not splits:
            raise HoidataError("the manifest lists no shards", file=str(path / MANIFEST))
        first = next(iter(splits.values()))[0]
        try:
            pfile = pq.ParquetFile(first)
        except (pa.ArrowInvalid, OSError) as e:
            raise HoidataError(f"unreadable Parquet shard: {e}", file=str(first)) from e
        schema = pfile.schema_arrow
        leaves = [pfile.schema.column(i).path for i in range(len(pfile.schema))]
        root = image_root or manifest.config.get("images") or manifest.config.get("image_root")
        return cls(path, manifest, splits, schema, leaves, Path(root) if root else None)


def shard_features(schema: pa.Schema, manifest: Manifest) -> dict[str, Any]:
    """The Features a shard carries in its ``huggingface`` metadata (what `load_dataset` reads), else the
    manifest's, with struct fields put back in the shards' order (manifests store sorted keys)."""
    meta = (schema.metadata or {}).get(b"huggingface")
    feats = None
    if meta:
        try:
            feats = orjson.loads(meta).get("info", {}).get("features")
        except (orjson.JSONDecodeError, AttributeError):
            feats = None
    feats = feats or manifest.features
    return {f.name: _align(feats[f.name], f.type) for f in schema if f.name in feats} | {
        k: v for k, v in feats.items() if k not in schema.names
    }


def _align(feature: Any, t: pa.DataType) -> Any:
    """``feature`` with its struct keys in the order of the Arrow type ``t``."""
    if isinstance(feature, list) and len(feature) == 1 and hasattr(t, "value_type"):
        return [_align(feature[0], t.value_type)]
    if not isinstance(feature, dict):
        return feature
    if "_type" in feature:
        if "feature" in feature and hasattr(t, "value_type"):
            return {**feature, "feature": _align(feature["feature"], t.value_type)}
        return feature
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        out = {n: _align(feature[n], t.field(n).type) for n in names if n in feature}
        return out | {k: v for k, v in feature.items() if k not in out}
    return feature


def publish_features(features: dict[str, Any], schema: pa.Schema) -> dict[str, Any]:
    """The Features with every image column decodable (``{"_type": "Image"}``), so that `load_dataset`
    hands back PIL images once the bytes are embedded."""
    out = dict(features)
    for f in schema:
        if _is_image_struct(f.type):
            out[f.name] = {"_type": "Image"}
        elif _is_image_list(f.type):
            wrapper = dict(out.get(f.name) or {})
            if "feature" not in wrapper:
                wrapper = {"_type": "List"}
            out[f.name] = {**wrapper, "feature": {"_type": "Image"}}
    return out


def _check_features(feats: dict[str, Any], schema: pa.Schema, where: Path) -> None:
    """The Features must describe the shards' Arrow types exactly, or `load_dataset` fails later."""
    import datasets

    if list(feats) != schema.names:
        raise HoidataError(
            f"the manifest's features {sorted(feats)} do not match the shard columns {sorted(schema.names)}",
            file=str(where / MANIFEST),
        )
    try:
        expected = datasets.Features.from_dict(feats).arrow_schema
    except (TypeError, ValueError, KeyError) as e:
        raise HoidataError(f"the manifest's features are not valid `datasets` Features: {e}") from e
    for f in schema:
        want = expected.field(f.name).type
        if not f.type.equals(want):
            raise HoidataError(
                f"column {f.name!r} is {f.type} in the shards but the manifest's features say {want}",
                file=str(where / MANIFEST),
            )


# --------------------------------------------------------------------------- embedding


class _Embedder:
    """Fills in image bytes from files under the image root (original bytes, never re-encoded)."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool

    def batch(
        self, batch: pa.RecordBatch, schema: pa.Schema, root: Path | None, file: Path, row0: int
    ) -> pa.RecordBatch:
        columns = []
        for i, f in enumerate(schema):
            col = batch.column(i)
            if _is_image_struct(f.type):
                rows = np.arange(row0, row0 + len(col))
                col = self._struct(col, root, file, rows, f.name)
            elif _is_image_list(f.type):
                col = self._list(col, root, file, row0, f.name)
            columns.append(col)
        return pa.RecordBatch.from_arrays(columns, schema=schema)

    def _list(self, lst: pa.Array, root: Path | None, file: Path, row0: int, name: str) -> pa.Array:
        lengths = pc.fill_null(pc.list_value_length(lst), 0).to_numpy(zero_copy_only=False)
        values = lst.flatten()  # honours the slice offset and skips null lists
        rows = np.repeat(np.arange(row0, row0 + len(lst)), lengths)
        values = self._struct(values, root, file, rows, name)
        large = pa.types.is_large_list(lst.type)
        offsets = np.zeros(len(lst) + 1, dtype=np.int64 if large else np.int32)
        np.cumsum(lengths, out=offsets[1:])
        cls = pa.LargeListArray if large else pa.ListArray
        return cls.from_arrays(pa.array(offsets), values, type=lst.type, mask=lst.is_null())

    def _struct(self, arr: pa.Array, root: Path | None, file: Path, rows: np.ndarray, name: str) -> pa.Array:
        data = pc.struct_field(arr, "bytes")
        paths = pc.struct_field(arr, "path")
        has_bytes = pc.fill_null(pc.greater(pc.binary_length(data), 0), False)
        need = pc.and_(pc.is_valid(paths), pc.invert(has_bytes))
        idx = np.flatnonzero(need.to_numpy(zero_copy_only=False))
        if len(idx):
            names = paths.take(pa.array(idx)).to_pylist()
            blobs = list(self.pool.map(lambda p: _read_image(p, root), names))
            for k, (_, error) in enumerate(blobs):
                if error:
                    raise HoidataError(error, file=str(file), record=int(rows[idx[k]]), field=name)
            data = pc.replace_with_mask(data, need, pa.array([b for b, _ in blobs], data.type))
        absolute = pc.fill_null(pc.starts_with(paths, "/"), False)
        if pc.any(absolute).as_py():  # publish a file name, never a local directory
            paths = pc.if_else(absolute, pc.replace_substring_regex(paths, r"^.*/", ""), paths)
        return pa.StructArray.from_arrays(
            [data, paths], fields=[arr.type.field("bytes"), arr.type.field("path")], mask=arr.is_null()
        )


def _read_image(name: str, root: Path | None) -> tuple[bytes, str | None]:
    """The file's bytes, after a header check (a file PIL cannot open would not decode on the Hub)."""
    if name.startswith("/"):
        path = Path(name)
    else:
        rel = safe_relative_path(name)
        if rel is None:
            return b"", f"image path {name!r} escapes the image root"
        if root is None:
            return b"", (
                f"image {name!r} is not embedded and the manifest records no image root: pass --images DIR"
            )
        path = root / rel
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            im.size  # noqa: B018 - parses the header only
    except FileNotFoundError:
        hint = (
            "" if root is None or root.is_dir() else f" (the image root {root} does not exist: pass --images)"
        )
        return b"", f"image not found: {path}{hint}"
    except OSError as e:
        return b"", f"unreadable image {path}: {e}"
    return data, None


# --------------------------------------------------------------------------- shards


@dataclass
class SplitStats:
    name: str
    rows: int = 0
    num_bytes: int = 0  # Arrow (in-memory) size, as `datasets` records num_bytes
    files: list[Path] = field(default_factory=list)


class _ShardWriter:
    """Writes one split's rows into shards of at most ``max_size`` bytes (one row group per flush).

    Shards go to temporary names, because the ``-of-0000n`` total is only known at the end."""

    def __init__(self, data_dir: Path, split: str, schema: pa.Schema, leaves: list[str], max_size: int):
        self.dir, self.split, self.schema, self.max_size = data_dir, split, schema, max_size
        self.stats = SplitStats(split)
        image_leaves = {
            leaf
            for f in schema
            if _is_image_struct(f.type) or _is_image_list(f.type)
            for leaf in leaves
            if leaf.split(".")[0] == f.name and leaf.endswith(".bytes")
        }
        # image bytes are compressed already: store them plain (fast, and chunk-dedup friendly on the Hub)
        self.options: dict[str, Any] = {
            "compression": {leaf: "none" if leaf in image_leaves else "zstd" for leaf in leaves},
            "use_dictionary": [leaf for leaf in leaves if leaf not in image_leaves],
            "column_encoding": dict.fromkeys(image_leaves, "PLAIN"),
            "use_content_defined_chunking": True,
            "write_page_index": True,
        }
        self.pending: list[pa.RecordBatch] = []
        self.pending_bytes = 0
        self.parts: list[Path] = []
        self.fh: Any = None
        self.writer: pq.ParquetWriter | None = None
        self.shard_rows = 0
        self.limit = min(ROW_GROUP_BYTES, max_size)

    def add(self, batch: pa.RecordBatch) -> None:
        self.pending.append(batch)
        self.pending_bytes += batch.nbytes
        self.stats.rows += batch.num_rows
        self.stats.num_bytes += batch.nbytes
        if self.pending_bytes >= self.limit:
            self._flush()

    def _open(self) -> None:
        self._close()
        part = self.dir / f".{self.split}-{len(self.parts):05d}.partial"
        self.parts.append(part)
        self.fh = open(part, "wb")  # noqa: SIM115 - closed in _close
        self.writer = pq.ParquetWriter(self.fh, self.schema, **self.options)
        self.shard_rows = 0

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.fh.close()
            self.writer = self.fh = None

    def _flush(self) -> None:
        if not self.pending:
            return
        table = pa.Table.from_batches(self.pending, self.schema)
        if self.writer is None or (self.shard_rows and self.fh.tell() + table.nbytes > self.max_size):
            self._open()
        assert self.writer is not None
        self.writer.write_table(table, row_group_size=table.num_rows)
        self.shard_rows += table.num_rows
        self.pending, self.pending_bytes = [], 0

    def finish(self) -> SplitStats:
        self._flush()
        if self.writer is None:  # no rows at all: one shard without row groups
            self._open()
        self._close()
        n = len(self.parts)
        for i, part in enumerate(self.parts):
            final = self.dir / f"{self.split}-{i:05d}-of-{n:05d}.parquet"
            os.replace(part, final)
            self.stats.files.append(final)
        return self.stats


# --------------------------------------------------------------------------- examples


@dataclass
class _Example:
    image: str  # file name under assets/
    caption: str  # markdown


def _fence(text: str, lang: str = "text") -> str:
    """A fenced block that no backtick run inside the text can close early."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _conversation(row: dict[str, Any]) -> str:
    """The conversation columns of an SFT/DPO row as plain text, one message per paragraph."""
    blocks = []
    for col in CONVERSATION_COLUMNS:
        value = row.get(col)
        if value is None:
            continue
        lines = []
        for msg in value if isinstance(value, list) else [value]:
            if isinstance(msg, dict):
                content = msg.get("content")
                if isinstance(content, list):
                    content = " ".join(
                        (p.get("text") or "") if p.get("type") == "text" else f"<{p.get('type')}>"
                        for p in content
                        if isinstance(p, dict)
                    )
                calls = [
                    f"[calls {c['function'].get('name')}({c['function'].get('arguments') or ''})]"
                    for c in msg.get("tool_calls") or []
                    if isinstance(c, dict) and isinstance(c.get("function"), dict)
                ]
                lines.append(" ".join([f"{msg.get('role', '?')}: {content or ''}".rstrip(), *calls]))
            else:
                lines.append(str(msg))
        blocks.append(f"**{col}**\n\n" + _fence("\n\n".join(lines)))
    return "\n\n".join(blocks)


def _render_example(row: dict[str, Any], k: int, assets: Path) -> _Example | None:
    from hoidata.viz.draw import draw_sample

    image = row.get("image")
    images = row.get("images") or []
    if isinstance(image, dict) and image.get("bytes") and row.get("instances") is not None:
        im = draw_sample(row)
        pairs = [
            f"{row['instances'][p['subject']]['label']} {p['verb']} "
            + (row["instances"][p["object"]]["label"] if p["object"] >= 0 else "")
            for p in row.get("interactions") or []
        ]
        caption = f"`{row.get('sample_id', k)}`: " + ("; ".join(s.strip() for s in pairs) or "no interaction")
    else:
        first = image if isinstance(image, dict) else next((i for i in images if i and i.get("bytes")), None)
        if not first or not first.get("bytes"):
            return None
        im = Image.open(io.BytesIO(first["bytes"])).convert("RGB")
        more = f" (+{len(images) - 1} more images)" if len(images) > 1 else ""
        caption = f"`{row.get('sample_id', k)}`{more}"
        text = _conversation(row)
        if text:
            caption += "\n\n" + text
    im.thumbnail((EXAMPLE_SIDE, EXAMPLE_SIDE))
    name = f"example-{k}.png"
    im.save(assets / name, format="PNG")
    return _Example(name, caption)


# --------------------------------------------------------------------------- card


def _size_category(n: int) -> str:
    bounds = [
        (10**3, "n<1K"),
        (10**4, "1K<n<10K"),
        (10**5, "10K<n<100K"),
        (10**6, "100K<n<1M"),
        (10**7, "1M<n<10M"),
        (10**8, "10M<n<100M"),
        (10**9, "100M<n<1B"),
    ]
    return next((label for bound, label in bounds if n < bound), "n>1B")


def _card_yaml(
    feats: dict[str, Any], stats: list[SplitStats], repo_id: str | None, license: str | None, tasks: list[str]
) -> str:
    """Front matter written by the libraries' own serialisers, so the Hub and `datasets` read it back."""
    import datasets
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    card = DatasetCardData(
        license=license,
        task_categories=tasks or None,
        tags=["human-object-interaction", "hoidata"],
        size_categories=[_size_category(sum(s.rows for s in stats))],
        pretty_name=repo_id.split("/")[-1] if repo_id else None,
    )
    configs = {
        "default": {
            "data_files": [{"split": s.name, "path": f"data/{s.name}-*"} for s in stats],
            "default": True,
        }
    }
    MetadataConfigs(configs).to_dataset_card_data(card)
    info = datasets.DatasetInfo(
        features=datasets.Features.from_dict(feats),
        splits=datasets.SplitDict(
            {s.name: datasets.SplitInfo(s.name, num_bytes=s.num_bytes, num_examples=s.rows) for s in stats}
        ),
        download_size=sum(f.stat().st_size for s in stats for f in s.files),
        dataset_size=sum(s.num_bytes for s in stats),
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(card)
    return card.to_yaml()


def _card(
    sources: list[_Source],
    manifest_names: list[str],
    stats: list[SplitStats],
    feats: dict[str, Any],
    examples: list[_Example],
    repo_id: str | None,
    license: str | None,
) -> str:
    columns = set(feats)
    tasks = []
    if "instances" in columns:
        tasks.append("object-detection")
    if columns & set(CONVERSATION_COLUMNS):
        tasks.append("image-text-to-text")
    title = repo_id.split("/")[-1] if repo_id else "hoidata dataset"
    load_name = repo_id or "path/to/this/folder"
    lines = [
        "---",
        _card_yaml(feats, stats, repo_id, license, tasks).rstrip("\n"),
        "---",
        "",
        f"# {title}",
        "",
        f"Human-object-interaction data made with hoidata {__version__}. Images are embedded in the"
        " Parquet shards (each file's original bytes, not re-encoded); an image's `path` keeps its"
        " file name relative to the original image root.",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'ds = load_dataset("{load_name}")',
        "```",
        "",
        "## Splits",
        "",
        "| split | rows | shards | size |",
        "|---|---:|---:|---:|",
    ]
    for s in stats:
        size = sum(f.stat().st_size for f in s.files)
        lines.append(f"| {s.name} | {s.rows:,} | {len(s.files)} | {human_size(size)} |")
    lines += ["", "## Provenance", ""]
    for src, manifest_name in zip(sources, manifest_names, strict=True):
        m = src.manifest
        c = m.counts
        lines += [
            f"### {', '.join(src.splits)}: stage `{m.stage}`",
            "",
            f"- made by hoidata {m.version} on {m.created or 'an unknown date'}; published with hoidata "
            f"{__version__}",
            f"- records: {c.get('in', 0):,} in → {c.get('out', 0):,} out, {c.get('rejected', 0):,} rejected"
            + (f" ({c['rows']:,} rows)" if "rows" in c else "")
            + "; rejects (with reasons) stay in the dataset directory's `rejects.parquet`",
            f"- input fingerprint: `{m.input_fingerprint}`",
            f"- full manifest: [`{manifest_name}`]({manifest_name})",
            "",
            "Config:",
            "",
            _fence(yaml.safe_dump(m.config, sort_keys=False, allow_unicode=True).rstrip("\n"), "yaml"),
            "",
        ]
    if examples:
        lines += ["## Examples", ""]
        for ex in examples:
            lines += [f"![{ex.image}](assets/{ex.image})", "", ex.caption, ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# --------------------------------------------------------------------------- tree


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
    """
    dirs = _as_list(dataset_dirs)
    if not dirs:
        raise HoidataError("no dataset directory given")
    max_size = parse_size(max_shard_size)
    if examples < 0:
        raise HoidataError(f"--examples must be 0 or more, got {examples}")
    tree = Path(tree_dir)
    sources = [_Source.open(d, image_root) for d in dirs]
    _check_out(tree, dirs)
    first = sources[0]
    feats = publish_features(shard_features(first.schema, first.manifest), first.schema)
    _check_features(feats, first.schema, first.path)
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
    schema = with_features(first.schema, feats)

    tree.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{tree.name}.", suffix=".partial", dir=tree.parent))
    try:
        (tmp / "data").mkdir()
        (tmp / "assets").mkdir()
        stats: list[SplitStats] = []
        rows_for_examples: list[dict[str, Any]] = []
        with ThreadPoolExecutor(min(16, (os.cpu_count() or 2) * 4)) as pool:
            embed = _Embedder(pool)
            for src in sources:
                for split, files in src.splits.items():
                    writer = _ShardWriter(tmp / "data", split, schema, src.leaves, max_size)
                    for batch in _embedded_batches(src, files, schema, embed):
                        if len(rows_for_examples) < examples:
                            rows_for_examples += batch.slice(0, examples - len(rows_for_examples)).to_pylist()
                        writer.add(batch)
                    stats.append(writer.finish())
        rendered = [
            ex
            for k, row in enumerate(rows_for_examples)
            if (ex := _render_example(row, k, tmp / "assets")) is not None
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
        card = _card(sources, manifest_names, stats, feats, rendered, repo_id, license)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        if tree.exists():
            shutil.rmtree(tree)
        os.replace(tmp, tree)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(p.relative_to(tree) for p in tree.rglob("*") if p.is_file())


def _embedded_batches(
    src: _Source, files: list[Path], schema: pa.Schema, embed: _Embedder
) -> Iterator[pa.RecordBatch]:
    for file in files:
        try:
            pfile = pq.ParquetFile(file)
        except (pa.ArrowInvalid, OSError) as e:
            raise HoidataError(f"unreadable Parquet shard: {e}", file=str(file)) from e
        if not pfile.schema_arrow.remove_metadata().equals(schema.remove_metadata()):
            raise HoidataError("its columns differ from the dataset's first shard", file=str(file))
        row = 0
        for batch in pfile.iter_batches(batch_size=READ_ROWS, use_threads=False):
            yield embed.batch(batch, schema, src.image_root, file, row)
            row += batch.num_rows


def format_tree(tree_dir: Path | str, files: Sequence[Path]) -> str:
    """The tree as lines of 'size  path', with a total, for the command line."""
    tree = Path(tree_dir)
    sizes = [(tree / f).stat().st_size for f in files]
    width = len(human_size(sum(sizes)))
    lines = [f"  {human_size(s):>{width}}  {f.as_posix()}" for f, s in zip(files, sizes, strict=True)]
    lines.append(f"  {human_size(sum(sizes)):>{width}}  total, {len(files)} files")
    return "\n".join(lines)


# --------------------------------------------------------------------------- upload


@dataclass
class PushResult:
    tree_dir: Path
    files: list[Path]
    url: str | None = None  # the dataset page; None for a dry run
    commit: str | None = None


def _redact(text: str, secrets: Sequence[str | None]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


def _public_endpoint(endpoint: str) -> str:
    """The endpoint without any user:password part, for messages."""
    parts = urlsplit(endpoint)
    return urlunsplit(parts._replace(netloc=parts.hostname or "")) if "@" in parts.netloc else endpoint


def _hub_error(
    e: BaseException, doing: str, repo_id: str, endpoint: str, secrets: list[str | None]
) -> HoidataError:
    """One line, no token: what failed, and what to do about it."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(e, OfflineModeIsEnabled):
        msg = f"{doing}: HF_HUB_OFFLINE is set, unset it to upload (or use --dry-run)"
    elif isinstance(e, HfHubHTTPError) and e.response is not None:
        code = e.response.status_code
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if code == 401:
            msg = (
                f"{doing}: the Hub refused the token (HTTP 401); pass --token, set HF_TOKEN or run "
                "`hf auth login`"
            )
        elif code == 403:
            msg = f"{doing}: the token may not write to {repo_id} (HTTP 403): {first}"
        else:
            msg = f"{doing}: the Hub answered HTTP {code}: {first}"
    else:
        cause: BaseException = e
        while cause.__cause__ is not None and str(cause).startswith("Error while uploading"):
            cause = cause.__cause__
        detail = " ".join(str(cause).split()) or type(cause).__name__
        if isinstance(cause, (ConnectionError, TimeoutError)) or "connect" in type(cause).__name__.lower():
            msg = f"{doing}: cannot reach the Hub at {_public_endpoint(endpoint)} ({detail})"
        else:
            msg = f"{doing}: {type(cause).__name__}: {detail}"
    return HoidataError(_redact(msg, secrets))


def push(
    dataset_dirs: Path | str | Sequence[Path | str],
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    revision: str | None = None,
    dry_run_dir: Path | str | None = None,
    staging_dir: Path | str | None = None,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    examples: int = 3,
    image_root: Path | str | None = None,
    license: str | None = None,
    on_built: Callable[[Path, list[Path]], None] | None = None,
) -> PushResult:
    """Build the repository tree and upload it as the dataset repo ``repo_id``.

    ``dry_run_dir``: build the tree there and stop (no network, no token needed). Otherwise the tree is
    built into ``staging_dir`` (kept) or a temporary folder (removed), then uploaded with
    ``HfApi.upload_folder``. That is the resumable path in huggingface_hub 2.x (``upload_large_folder``
    no longer exists): with hf_xet installed it uploads in a background pipeline with retries, commits
    in batches, and a re-run skips files already committed and chunks already stored; without hf_xet it
    falls back to one commit over plain LFS, with retried requests, whose re-run skips LFS objects the
    Hub already has. Because the tree is built deterministically, a re-run after a failure re-sends
    (almost) nothing. Remote files under ``data/``, ``assets/`` and ``hoidata_manifest*`` that the new
    tree lacks are deleted in the same upload, so stale shards never mix into the ``data/{split}-*``
    globs of the card. The token (``token``, else ``HF_TOKEN``, else the cached login) is checked
    before the build and never appears in messages.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise HoidataError(f"--repo-id {repo_id!r} is not a valid repository id: {e}") from None
    if "/" not in repo_id:
        raise HoidataError(f"--repo-id must be NAMESPACE/NAME (user or organisation), got {repo_id!r}")
    build = dict(
        repo_id=repo_id,
        max_shard_size=max_shard_size,
        examples=examples,
        image_root=image_root,
        license=license,
    )
    if dry_run_dir is not None:
        files = build_repo_tree(dataset_dirs, dry_run_dir, **build)  # type: ignore[arg-type]
        if on_built:
            on_built(Path(dry_run_dir), files)
        return PushResult(Path(dry_run_dir), files)

    from huggingface_hub import HfApi, constants, get_token

    secret = token or get_token()
    secrets = [token, get_token()]
    if not secret:
        raise HoidataError("no Hugging Face token: pass --token, set HF_TOKEN or run `hf auth login`")
    api = HfApi(token=secret)
    endpoint = api.endpoint or constants.ENDPOINT

    def hub(doing: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (KeyboardInterrupt, HoidataError):
            raise
        except Exception as e:
            raise _hub_error(e, doing, repo_id, endpoint, secrets) from e

    hub("checking the token", api.whoami)  # fail before a long build, not after it
    with tempfile.TemporaryDirectory(prefix="hoidata-push-") as scratch:
        tree = Path(staging_dir) if staging_dir is not None else Path(scratch) / "tree"
        files = build_repo_tree(dataset_dirs, tree, **build)  # type: ignore[arg-type]
        if on_built:
            on_built(tree, files)
        url = hub(
            f"creating {repo_id}",
            lambda: api.create_repo(repo_id, repo_type="dataset", private=private or None, exist_ok=True),
        )
        if revision and not revision.startswith("refs/"):
            hub(
                f"creating branch {revision}",
                lambda: api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True),
            )
        splits = sorted({m.group("split") for f in files if (m := SHARD_NAME.match(f.as_posix()))})
        info = hub(
            f"uploading to {repo_id}",
            lambda: api.upload_folder(
                repo_id=repo_id,
                folder_path=tree,
                repo_type="dataset",
                revision=revision,
                commit_message=f"Upload {', '.join(splits)} with hoidata {__version__}",
                delete_patterns=["data/*", "assets/*", "hoidata_manifest*"],
            ),
        )
    return PushResult(
        tree,
        files,
        url=str(url),
        commit=getattr(info, "oid", None),
    )
