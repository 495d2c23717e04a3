"""``hoidata eval hico|swig|grounding|referring|hoiqa``."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from hoidata.cli.apps import examples, new_app
from hoidata.cli.options import choice_enum
from hoidata.cli.params import JsonOut
from hoidata.cli.summary import show_report
from hoidata.eval.hico import PREDICTION_FORMATS, SETTINGS, eval_hico
from hoidata.eval.predictions import RANKING_RULES
from hoidata.eval.protocol import TIE_ORDERS
from hoidata.eval.protocol import VARIANTS as HICO_VARIANTS
from hoidata.eval.result_files import PPDM_IDS
from hoidata.eval.swig import VARIANTS as SWIG_VARIANTS
from hoidata.eval.swig import eval_swig
from hoidata.schemas.boxes import BoxOrigin
from hoidata.schemas.taxonomy import ZERO_SHOT_SPLITS


class EvalGroup(TyperGroup):
    """``hico`` and ``swig`` live here; the answer evaluators (``grounding``, ``referring``, ``hoiqa``,
    from :mod:`hoidata.cli.eval_answers`) are imported only when one of them, or the list, is asked
    for: their imports would otherwise cost every ``eval hico`` run."""

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        if cmd_name not in self.commands:
            self._add_answer_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        self._add_answer_commands()
        return super().list_commands(ctx)

    def _add_answer_commands(self) -> None:
        answers = new_app()
        for name, command, lines in importlib.import_module("hoidata.cli.eval_answers").COMMANDS:
            answers.command(name, epilog=examples(*lines))(command)
        for name, command in typer.main.get_command(answers).commands.items():  # type: ignore[attr-defined]
            self.commands.setdefault(name, command)


app = new_app(cls=EvalGroup, help="Evaluate predictions against a ground-truth dataset.")


# the choices, from the evaluators' own tables
HicoVariant = choice_enum("HicoVariant", tuple(HICO_VARIANTS))
HicoSetting = choice_enum("HicoSetting", SETTINGS)
ZeroShotSplit = choice_enum("ZeroShotSplit", ZERO_SHOT_SPLITS)
PredFormat = choice_enum("PredFormat", ("auto", *PREDICTION_FORMATS))
Ranking = choice_enum("Ranking", tuple(RANKING_RULES))
PpdmIds = choice_enum("PpdmIds", PPDM_IDS)
SwigVariant = choice_enum("SwigVariant", tuple(SWIG_VARIANTS))
TieOrder = choice_enum("TieOrder", TIE_ORDERS)


@app.command(
    "hico",
    epilog=examples(
        "hoidata eval hico preds/ --gt data/hico-test",
        "hoidata eval hico preds.parquet --gt data/hico-test --setting known-object --json report.json",
        "hoidata eval hico preds.parquet --gt data/hico-test --zero-shot rare_first --variant qpic",
        "hoidata eval hico ppdm_results.json --gt data/hico-test --box-origin zero-based",
    ),
)
def hico(
    predictions: Annotated[
        Path,
        typer.Argument(
            help="hoidata predictions (dataset directory or Parquet) or PPDM/QPIC result JSON.",
            show_default=False,
        ),
    ],
    gt: Annotated[
        Path, typer.Option("--gt", help="Converted HICO-DET dataset directory.", show_default=False)
    ],
    setting: Annotated[HicoSetting, typer.Option(help="Default, or Known-Object.")] = HicoSetting.default,
    zero_shot: Annotated[
        ZeroShotSplit | None, typer.Option("--zero-shot", help="Also report Seen / Unseen for this split.")
    ] = None,
    variant: Annotated[
        HicoVariant, typer.Option(help="official (MATLAB), or a named Python-port variant.")
    ] = HicoVariant.official,
    ranking: Annotated[
        Ranking, typer.Option(help="score: given scores (answer rank when none); rank: answer order only.")
    ] = Ranking.score,
    format: Annotated[
        PredFormat, typer.Option("--format", help="Predictions format (auto: .json is PPDM).")
    ] = PredFormat.auto,
    box_origin: Annotated[
        BoxOrigin, typer.Option("--box-origin", help="PPDM JSON: pixel convention of the boxes.")
    ] = BoxOrigin.ONE_BASED,
    ids: Annotated[
        PpdmIds, typer.Option(help="PPDM JSON: coco91 ids + verbs 1..117, or coco80 indices + verbs 0..116.")
    ] = PpdmIds.coco91,
    json_out: JsonOut = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write per-class AP against training frequency as a PNG.")
    ] = None,
    train: Annotated[
        Path | None,
        typer.Option(
            help="Converted training set, for --plot's frequencies (default: test pairs per class)."
        ),
    ] = None,
) -> None:
    """HICO-DET mAP (Full / Rare / Non-Rare, Seen / Unseen) with the official MATLAB protocol by default."""

    report = eval_hico(
        predictions,
        gt,
        variant=variant.value,
        setting=setting.value,
        zero_shot=zero_shot.value if zero_shot else None,
        ranking=ranking.value,
        format=format.value,
        box_origin=box_origin.value,
        ids=ids.value,
    )
    show_report(report, json_out)
    if plot is not None:
        from hoidata.eval.plot import plot_ap_vs_frequency, training_frequency  # Pillow: only to draw

        freq = training_frequency(train, len(report.ap)) if train else report.npos
        label = (
            "training pairs per class (+1, log scale)" if train else "test pairs per class (+1, log scale)"
        )
        full = report.map.get("full") or 0.0
        title = f"HICO-DET per-class AP ({report.protocol.name}, {report.setting}): mAP {100 * full:.2f}"
        plot_ap_vs_frequency(report.ap, freq, report.rare, report.scored, plot, title=title, x_label=label)
        typer.echo(f"  plot: {plot}")


@app.command(
    "swig",
    epilog=examples(
        "hoidata eval swig preds.parquet --gt data/swig-test",
        "hoidata eval swig preds/ --gt data/swig-test --variant thid --json report.json",
    ),
)
def swig(
    predictions: Annotated[
        Path,
        typer.Argument(help="hoidata predictions (dataset directory or Parquet).", show_default=False),
    ],
    gt: Annotated[
        Path, typer.Option("--gt", help="Converted SWIG-HOI dataset directory.", show_default=False)
    ],
    variant: Annotated[
        SwigVariant,
        typer.Option(help="choir (the benchmark's own evaluator; Full without novel) or thid (Full = all)."),
    ] = SwigVariant.choir,
    ranking: Annotated[
        Ranking, typer.Option(help="score: given scores (answer rank when none); rank: answer order only.")
    ] = Ranking.score,
    ties: Annotated[
        TieOrder | None,
        typer.Option(help="Equal scores: reversed input order (both reference evaluators) or input order."),
    ] = None,
    json_out: JsonOut = None,
) -> None:
    """SWIG-HOI mAP (Full / Rare / Non-rare / Novel over the 5,539 evaluation classes)."""

    report = eval_swig(
        predictions, gt, variant=variant.value, ranking=ranking.value, ties=ties.value if ties else None
    )
    show_report(report, json_out)
