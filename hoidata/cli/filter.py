"""``hoidata filter sft|prefs``."""

from __future__ import annotations

from hoidata.cli.apps import examples, new_app
from hoidata.cli.options import RunOptions, with_config_options
from hoidata.cli.params import InputDir, Out
from hoidata.cli.summary import print_summary
from hoidata.pipelines.filter import FilterPrefsConfig, FilterSftConfig, filter_prefs, filter_sft

app = new_app(help="Select gen-cot rollouts: verified ones for SFT, or preference pairs for DPO.")


@app.command(
    "sft",
    epilog=examples(
        "hoidata filter sft data/cot --out data/cot-sft",
        "hoidata filter sft data/cot --min-accuracy 1 --min-tool 0.5 --per-prompt 2 --out data/cot-sft",
    ),
)
@with_config_options()
def sft(input_dir: InputDir, out: Out, cfg: FilterSftConfig, run: RunOptions) -> None:
    """Keep rollouts whose rewards pass the thresholds, as a TRL SFT dataset (tool turns included)."""
    manifest = filter_sft(input_dir, out, cfg, overwrite=run.overwrite, shard=run.shard_spec)
    print_summary(manifest, out, shard=run.shard)


@app.command("prefs", epilog=examples("hoidata filter prefs data/cot --min-margin 1.0 --out data/cot-dpo"))
@with_config_options()
def prefs(input_dir: InputDir, out: Out, cfg: FilterPrefsConfig, run: RunOptions) -> None:
    """Pair a high-reward and a low-reward rollout of each prompt, as a TRL DPO dataset.

    Turns both rollouts share (the same zoom and its crop) join the prompt; each completion runs
    from where they differ to its next tool image, since TRL's DPO gives images to the prompt only.
    """
    manifest = filter_prefs(input_dir, out, cfg, overwrite=run.overwrite, shard=run.shard_spec)
    print_summary(manifest, out, shard=run.shard)
