"""``hoidata boxes``."""

from __future__ import annotations

from hoidata.cli.apps import examples, new_app
from hoidata.cli.options import RunOptions, with_config_options
from hoidata.cli.params import InputDir, Out
from hoidata.cli.summary import print_summary
from hoidata.pipelines.boxes import BoxesConfig, boxes

app = new_app()


@app.command(
    epilog=examples(
        "hoidata boxes data/hico-train --profile qwen2.5-vl --out data/hico-train-boxes",
        "hoidata boxes data/hico-test --profile qwen3-vl --union-pad 8 --out data/hico-test-q3",
        "hoidata boxes data/swig-train --profile qwen3-vl --no-object null --max-pixels 1003520 -o data/swig-q3",
    )
)
@with_config_options()
def boxes_command(input_dir: InputDir, out: Out, cfg: BoxesConfig, run: RunOptions) -> None:
    """Add union, refer and model-frame boxes to a canonical dataset.

    Union ("interaction") boxes, refer boxes [person, object, union] and every box in the
    profile's frame, computed from the canonical boxes.
    """
    manifest = boxes(input_dir, out, cfg, overwrite=run.overwrite, shard=run.shard_spec)
    print_summary(manifest, out, shard=run.shard)
