"""Dataset directories: sharded Parquet with `datasets` Features, a manifest, rejects, resume."""

from hoidata.io.dataset_dir import open_dataset, read_table
from hoidata.io.manifest import Manifest, ProfileSpec, dataset_fingerprint, read_manifest, require_stage
from hoidata.io.stage import ALL_SHARDS, Output, ShardSpec, StageRun, run_stage, run_stage_on_shards

__all__ = [
    "ALL_SHARDS",
    "Manifest",
    "Output",
    "ProfileSpec",
    "ShardSpec",
    "StageRun",
    "dataset_fingerprint",
    "open_dataset",
    "read_manifest",
    "read_table",
    "require_stage",
    "run_stage",
    "run_stage_on_shards",
]
