"""``hoidata eval grounding|referring|hoiqa``: scores of answers to SFT or HOI-QA questions
(registered by :mod:`hoidata.cli.eval`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hoidata.cli.options import choice_enum
from hoidata.cli.params import Completions, JsonOut, SkipMissing
from hoidata.cli.profile_option import ProfileOpt
from hoidata.cli.summary import show_report
from hoidata.eval.box_answer import eval_box_answer
from hoidata.eval.grounding import eval_grounding
from hoidata.eval.hoiqa import eval_hoiqa
from hoidata.eval.referring import eval_referring
from hoidata.options import size
from hoidata.sft.qa import BOX_FORMATS

BoxFormat = choice_enum("BoxFormat", BOX_FORMATS)


def grounding(
    completions: Completions,
    gt: Annotated[
        Path,
        typer.Option("--gt", help="The grounding SFT dataset the prompts came from.", show_default=False),
    ],
    coco: Annotated[
        bool,
        typer.Option(
            "--coco", help="COCO-style AR (per category, first 100 answers) instead of pooled recall."
        ),
    ] = False,
    profile: ProfileOpt = None,
    skip_missing: SkipMissing = False,
    json_out: JsonOut = None,
) -> None:
    """Grounding AR over IoU 0.50:0.05:0.95 (AR@0.5, AR@0.75, by object size); pooled recall by default."""

    report = eval_grounding(
        completions, gt, coco=coco, profile=profile.value if profile else None, skip_missing=skip_missing
    )
    show_report(report, json_out)


def referring(
    completions: Completions,
    gt: Annotated[
        Path,
        typer.Option("--gt", help="The referring SFT dataset the prompts came from.", show_default=False),
    ],
    skip_missing: SkipMissing = False,
    bertscore_model: Annotated[
        str | None,
        typer.Option(help="Local model directory for BERTScore (needs the bert_score package; no download)."),
    ] = None,
    bertscore_layers: Annotated[
        int | None, typer.Option(help="BERTScore: the layer to use (roberta-large: 17).")
    ] = None,
    bertscore_rescale: Annotated[
        bool, typer.Option("--bertscore-rescale", help="BERTScore: rescale with the model's baseline.")
    ] = False,
    json_out: JsonOut = None,
) -> None:
    """Referring: exact match of the named verb set, verb precision/recall/F1, optional BERTScore."""

    report = eval_referring(
        completions,
        gt,
        skip_missing=skip_missing,
        bertscore_model=bertscore_model,
        bertscore_layers=bertscore_layers,
        bertscore_rescale=bertscore_rescale,
    )
    show_report(report, json_out)


def hoiqa(
    completions: Annotated[
        Path,
        typer.Argument(
            help="A predict directory, or JSONL/Parquet with `sample_id` (row id + `#` + item index) and `completion`.",
            show_default=False,
        ),
    ],
    gt: Annotated[
        Path,
        typer.Option(
            "--gt", help="A dataset of QA items (convert hoiqa, or hoidata qa).", show_default=False
        ),
    ],
    skip_missing: SkipMissing = False,
    image_size: Annotated[
        str | None,
        typer.Option(help="WxH for rows without a size (reference: 1920x1080 EPIC/VISOR, 1440x1080 Ego4D)."),
    ] = None,
    truncate: Annotated[
        bool, typer.Option("--truncate", help="Truncate rescaled boxes to integer pixels, as the reference.")
    ] = False,
    box_format: Annotated[
        BoxFormat | None,
        typer.Option(
            help="How answers write boxes (default: as predict recorded, else grid).", show_default=False
        ),
    ] = None,
    profile: ProfileOpt = None,
    json_out: JsonOut = None,
) -> None:
    """HOI-QA: noun accuracy, box accuracy (IoU > 0.5) and mean IoU; ho_ref / i_ref and their subsets."""

    wh = size(image_size) if image_size else None
    report = eval_hoiqa(
        completions,
        gt,
        skip_missing=skip_missing,
        image_size=wh,
        truncate=truncate,
        box_format=box_format.value if box_format else None,
        profile=profile.value if profile else None,
    )
    show_report(report, json_out)


def box_answer(
    run: Annotated[
        Path, typer.Argument(help="A greedy gen-prefs run (--boxes 1 --answers 1).", show_default=False)
    ],
    json_out: JsonOut = None,
) -> None:
    """Box-then-answer: the first box's IoU with the target region (mean, >= 0.5) and answer accuracy."""
    show_report(eval_box_answer(run), json_out)


COMMANDS = [  # name, command, example lines
    (
        "grounding",
        grounding,
        (
            "hoidata eval grounding preds/grounding.jsonl --gt data/sft-grounding",
            "hoidata eval grounding preds/grounding.parquet --gt data/sft-grounding --coco --json report.json",
        ),
    ),
    (
        "referring",
        referring,
        (
            "hoidata eval referring preds/referring.jsonl --gt data/sft-referring",
            "hoidata eval referring preds/referring.parquet --gt data/sft-referring --json report.json",
            "hoidata eval referring preds.jsonl --gt data/sft-referring --bertscore-model models/roberta-large",
        ),
    ),
    (
        "hoiqa",
        hoiqa,
        (
            "hoidata eval hoiqa preds/hoiqa.jsonl --gt data/hoiqa-visor",
            "hoidata eval hoiqa preds/hico-qa --gt data/hico-test-qa   # a predict --task qa directory",
            "hoidata eval hoiqa preds.jsonl --gt data/hoiqa-epic-test --image-size 1920x1080 --json report.json",
        ),
    ),
    (
        "box-answer",
        box_answer,
        (
            "hoidata gen-prefs data/box-answer-test --boxes 1 --answers 1 --box-temperature 0 "
            "--answer-temperature 0 --engine vllm --model runs/dpo-box-stage2 -o preds/box",
            "hoidata eval box-answer preds/box --json report.json",
        ),
    ),
]
