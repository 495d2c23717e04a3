"""``hoidata qa``."""

from __future__ import annotations

from hoidata.cli.apps import examples, new_app
from hoidata.cli.options import RunOptions, with_config_options
from hoidata.cli.params import InputDir, Out
from hoidata.cli.summary import print_summary
from hoidata.pipelines.referral import QAConfig, add_qa

app = new_app()


@app.command(
    epilog=examples(
        "hoidata qa data/hico-test -o data/hico-test-qa",
        "hoidata qa data/swig-train --questions actObjN2objBB,actN2objN --max-boxes 2 -o data/swig-train-qa",
        "hoidata boxes data/hico-test-qa --profile qwen2.5-vl -o data/hico-test-qa-boxes",
        "hoidata build-sft hoiqa data/hico-test-qa-boxes -o data/hico-test-qa-sft",
        "hoidata predict data/hico-test-qa --task qa --model runs/sft --engine hf -o preds/qa",
        "hoidata eval hoiqa preds/qa --gt data/hico-test-qa",
    )
)
@with_config_options()
def qa_command(input_dir: InputDir, out: Out, cfg: QAConfig, run: RunOptions) -> None:
    """Write HOI-Ref-style referral questions about every person-object pair into the qa column.

    ho_ref ("Where is the cup?", a box → its name) and i_ref ("Where is the cup the person is
    holding?", "Which person is holding the cup?", "What is the person holding?") questions, with
    their answers as boxes or names: what build-sft hoiqa, predict --task qa and eval hoiqa read.
    """
    manifest = add_qa(input_dir, out, cfg, overwrite=run.overwrite, shard=run.shard_spec)
    print_summary(manifest, out, shard=run.shard)
