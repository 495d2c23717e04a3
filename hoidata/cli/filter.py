"""``hoidata filter sft|prefs|box-prefs|answer-prefs``."""

from __future__ import annotations

from hoidata.cli.apps import examples, new_app
from hoidata.cli.options import RunOptions, with_config_options
from hoidata.cli.params import InputDir, Out
from hoidata.cli.summary import print_summary
from hoidata.pipelines.filter import FilterPrefsConfig, FilterSftConfig, filter_prefs, filter_sft
from hoidata.pipelines.filter_box_prefs import FilterBoxPrefsConfig, filter_box_prefs

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


@app.command(
    "box-prefs",
    epilog=examples(
        "hoidata filter box-prefs data/prefs --out data/dpo-boxes",
        "hoidata filter box-prefs data/prefs --max-low 0.3 --min-high 0.7 --max-pairs 2 --out data/dpo-boxes",
    ),
)
@with_config_options()
def box_prefs(input_dir: InputDir, out: Out, cfg: FilterBoxPrefsConfig, run: RunOptions) -> None:
    """Box pairs of gen-prefs questions (box-then-answer DPO, step 1): a box that works against one that does not."""
    manifest = filter_box_prefs(input_dir, out, cfg, "box", overwrite=run.overwrite, shard=run.shard_spec)
    print_summary(manifest, out, shard=run.shard)


@app.command("answer-prefs", epilog=examples("hoidata filter answer-prefs data/prefs --out data/dpo-answers"))
@with_config_options()
def answer_prefs(input_dir: InputDir, out: Out, cfg: FilterBoxPrefsConfig, run: RunOptions) -> None:
    """Answer pairs on the best box's crop (box-then-answer DPO, step 2): a right answer against a wrong one."""
    manifest = filter_box_prefs(input_dir, out, cfg, "answer", overwrite=run.overwrite, shard=run.shard_spec)
    print_summary(manifest, out, shard=run.shard)
