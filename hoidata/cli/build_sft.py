"""``hoidata build-sft TASK``."""

from __future__ import annotations

from hoidata.cli.apps import examples, new_app
from hoidata.cli.options import RunOptions, with_config_options
from hoidata.cli.params import InputDir, Out
from hoidata.cli.summary import print_summary
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft

app = new_app()


@app.command(
    epilog=examples(
        "hoidata build-sft referring data/hico-train-boxes --out data/sft-referring",
        "hoidata build-sft grounding data/hico-train-boxes --out data/sft-grounding --images embed",
        "hoidata build-sft cof data/hico-train-boxes --tool-share 0.35 --images resize --out data/sft-cof",
        "hoidata build-sft cof data/hico-train-boxes --tools zoom_in --out data/sft-cof-zoom",
        "hoidata build-sft spatial data/hico-train-boxes --seed 1 --out data/sft-spatial",
    )
)
@with_config_options()
def build_sft_command(cfg: BuildSftConfig, input_dir: InputDir, out: Out, run: RunOptions) -> None:
    """Build a TRL-ready SFT dataset (images + messages) from a boxes dataset."""
    manifest = build_sft(input_dir, out, cfg, overwrite=run.overwrite, shard=run.shard_spec)
    print_summary(manifest, out, shard=run.shard)
