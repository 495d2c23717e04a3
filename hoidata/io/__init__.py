"""Dataset directories: sharded Parquet with `datasets` Features, a manifest, rejects, resume."""

from hoidata.io.dataset_dir import Manifest, StageRun, open_dataset, read_manifest, read_table

__all__ = ["Manifest", "StageRun", "open_dataset", "read_manifest", "read_table"]
