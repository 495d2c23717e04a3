"""``hoidata convert hico|swig|hoiqa``."""

from __future__ import annotations

from hoidata.cli.apps import examples, new_app
from hoidata.cli.options import RunOptions, with_config_options
from hoidata.cli.params import Out
from hoidata.cli.summary import print_summary
from hoidata.pipelines.convert import HICO_LAYOUTS, HOIQA_LAYOUTS, ConvertConfig, convert

app = new_app(help="Convert raw annotations (HICO-DET, SWIG-HOI, HOI-QA) into a canonical dataset.")


def _convert(cfg: ConvertConfig, out: Out, run: RunOptions) -> None:
    print_summary(convert(cfg, out, overwrite=run.overwrite, shard=run.shard_spec), out, shard=run.shard)


@app.command(
    "hico",
    epilog=examples(
        "hoidata convert hico -a anno_bbox.mat --split test -i hico_20160224_det/images/test2015 -o data/hico-test",
        "hoidata convert hico -a test_hico.json -i images/test2015 -o data/hico-test --embed-images",
        "hoidata convert hico -a trainval_hico.json --box-origin zero-based -i images/train2015 -o data/hico-train",
    ),
)
@with_config_options(fixed={"source": "hico"}, choices={"format": HICO_LAYOUTS}, exclude=("image_size",))
def hico(out: Out, cfg: ConvertConfig, run: RunOptions) -> None:
    """HICO-DET: official `anno_bbox.mat`, PPDM/QPIC JSON or UPT JSON (auto-detected).

    Box origins by default: `mat` and `upt` one-based (official MATLAB pixels); `ppdm` one-based
    (true of `test_hico.json`; `trainval_hico.json` is believed to be zero-based: say so with
    `--box-origin zero-based`).
    """
    _convert(cfg, out, run)


@app.command(
    "swig",
    epilog=examples(
        "hoidata convert swig -a swig_trainval_1000.json -i swig/images_512 -o data/swig-train",
        "hoidata convert swig -a swig_test_1000.json -i swig/images_512 -o data/swig-test --embed-images",
    ),
)
@with_config_options(fixed={"source": "swig"}, exclude=("format", "image_size"))
def swig(out: Out, cfg: ConvertConfig, run: RunOptions) -> None:
    """SWIG-HOI JSON (`box_annotations`, `hoi_annotations`); boxes are continuous pixels by default."""
    _convert(cfg, out, run)


@app.command(
    "hoiqa",
    epilog=examples(
        "hoidata convert hoiqa -a epic-kitchens-train.json -i EPIC_Kitchens/frames -o data/hoiqa-epic-train",
        "hoidata convert hoiqa -a epic-visor-test.json -i VISOR -o data/hoiqa-visor --image-size 1920x1080",
    ),
)
@with_config_options(
    fixed={"source": "hoiqa"}, choices={"format": HOIQA_LAYOUTS}, exclude=("box_origin", "clip_boxes")
)
def hoiqa(out: Out, cfg: ConvertConfig, run: RunOptions) -> None:
    """HOI-QA (HOI-Ref): train conversations with `{<x1><y1><x2><y2>}` 0–100 boxes, test dicts, VISOR list."""
    _convert(cfg, out, run)
