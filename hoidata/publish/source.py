"""The dataset directories being published: their shards per split, and the `datasets` Features the
published shards carry (image columns made decodable, checked against the Arrow types)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from hoidata.errors import HoidataError
from hoidata.io.manifest import MANIFEST, Manifest, read_manifest

SHARD_NAME = re.compile(r"^data/(?P<split>\w+(?:\.\w+)*)-\d{5}-of-\d{5}\.parquet$")


def is_image_struct(t: pa.DataType) -> bool:
    """The `datasets` Image storage: struct<bytes: binary, path: string>."""
    return (
        pa.types.is_struct(t)
        and {t.field(i).name for i in range(t.num_fields)} == {"bytes", "path"}
        and pa.types.is_binary(t.field("bytes").type)
        and pa.types.is_string(t.field("path").type)
    )


def is_image_list(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and is_image_struct(t.value_type)


@dataclass
class Source:
    """One dataset directory to publish: its manifest, shards per split and image root."""

    path: Path
    manifest: Manifest
    splits: dict[str, list[Path]]
    schema: pa.Schema
    leaves: list[str]  # Parquet leaf column paths, for per-column writer options
    image_root: Path | None

    @classmethod
    def open(cls, path: Path, image_root: Path | str | None) -> Source:
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
        if is_image_struct(f.type):
            out[f.name] = {"_type": "Image"}
        elif is_image_list(f.type):
            wrapper = dict(out.get(f.name) or {})
            if "feature" not in wrapper:
                wrapper = {"_type": "List"}
            out[f.name] = {**wrapper, "feature": {"_type": "Image"}}
    return out


def check_features(feats: dict[str, Any], schema: pa.Schema, where: Path) -> None:
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
