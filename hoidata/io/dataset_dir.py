"""Reading a complete dataset directory (see :mod:`hoidata.io.stage` for how one is written):
as one Arrow table without `datasets`, or as a `datasets.Dataset` whose images decode anywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hoidata.io.files import read_parquet
from hoidata.io.manifest import read_manifest
from hoidata.schemas.canonical import with_features


def read_table(path: Path | str, columns: list[str] | None = None) -> pa.Table:
    """All shards of a complete dataset directory as one Arrow table (no `datasets` import)."""
    manifest = read_manifest(path)
    return pa.concat_tables([read_parquet(f, columns=columns) for f in manifest.shard_files(path)])


def open_dataset(path: Path | str, image_root: Path | str | None = None) -> Any:
    """The dataset as a `datasets.Dataset`, with relative image paths resolved against the image
    root recorded in the manifest (or ``image_root``), so that images decode from anywhere."""
    import datasets

    manifest = read_manifest(path)
    table = read_table(path)
    root = image_root or manifest.config.get("images")
    feats = dict(manifest.features)

    def resolve(image: pa.StructArray) -> pa.StructArray:
        paths = image.field("path")
        prefix = str(Path(root).resolve()) + "/"
        has_bytes = pc.is_valid(image.field("bytes"))
        joined = pc.binary_join_element_wise(prefix, paths, "")
        resolved = pc.if_else(pc.or_kleene(pc.is_null(paths), has_bytes), paths, joined)
        return pa.StructArray.from_arrays([image.field("bytes"), resolved], names=["bytes", "path"])

    if root and "image" in table.column_names:
        image = resolve(table.column("image").combine_chunks())
        table = table.set_column(table.column_names.index("image"), "image", image)
        feats["image"] = {"_type": "Image"}
    if root and "images" in table.column_names:
        lists = table.column("images").combine_chunks()
        off = lists.offsets
        values = resolve(lists.values.slice(off[0].as_py(), off[-1].as_py() - off[0].as_py()))
        offsets = pc.subtract(off, off[0])
        images = pa.ListArray.from_arrays(offsets, values, mask=lists.is_null())
        table = table.set_column(table.column_names.index("images"), "images", images)
        feats["images"] = {"feature": {"_type": "Image"}, "_type": "List"}
    return datasets.Dataset(
        table.cast(with_features(table.schema, feats)),
        info=datasets.DatasetInfo(features=datasets.Features.from_dict(feats)),
    )
