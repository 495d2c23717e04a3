"""Evaluation report pages: the summary numbers, then charts. mAP reports (HICO-DET, SWIG-HOI) get
per-class AP by group (rare / non-rare / unseen or novel), the worst classes and precision-recall
curves of chosen classes; grounding, referring and HOI-QA reports their own summaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hoidata.errors import HoidataError
from hoidata.show import charts
from hoidata.show.curves import chosen_classes, hico_curves
from hoidata.show.discover import report_kind
from hoidata.show.html import esc, json_block, table

WORST = 25  # classes in the worst-classes chart and table


def report_body(report: dict[str, Any], folder: Path, title: str, pr_classes: list[str]) -> str:
    """The page body for one report; charts are written into ``folder/charts``."""
    kind = report_kind(report)
    parts = [f"<h2>{esc(title)}</h2>"]
    plots = charts.available()
    if not plots:
        parts.append(
            '<p class="note">charts need matplotlib (pip install matplotlib); the numbers follow.</p>'
        )
    if kind in ("hico", "swig"):
        parts.append(_map_report(report, kind, folder, plots, pr_classes))
    elif kind == "grounding":
        parts.append(_grounding(report, folder, plots))
    elif kind == "referring":
        parts.append(_referring(report, folder, plots))
    else:
        parts.append(_hoiqa(report, folder, plots))
    parts += [f'<p class="note">note: {esc(n)}</p>' for n in report.get("notes") or []]
    parts.append(
        json_block(
            {k: v for k, v in report.items() if k not in ("classes", "items", "verbs", "categories")},
            "the report (without per-class rows)",
        )
    )
    return "".join(parts)


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * float(v):.2f}"


def _img(path: Path, folder: Path, alt: str) -> str:
    return f'<img src="{esc(path.relative_to(folder).as_posix())}" alt="{esc(alt)}">'


def _map_report(report: dict[str, Any], kind: str, folder: Path, plots: bool, pr_classes: list[str]) -> str:
    classes = report.get("classes") or []
    scored = [c for c in classes if c.get("scored", c.get("in_full", True)) and c.get("npos")]
    ap = np.array([c["ap"] for c in scored], np.float64)  # classes with ground truth: the rest score 0
    if kind == "hico":
        groups = {
            "rare": np.array([bool(c.get("rare")) for c in scored], bool),
            "non-rare": np.array([not c.get("rare") for c in scored], bool),
        }
        if any("unseen" in c for c in scored):
            groups["unseen"] = np.array([bool(c.get("unseen")) for c in scored], bool)
        title = f"HICO-DET ({report.get('variant')}, {report.get('setting')})"
    else:
        freq = np.array([c.get("frequency", 2) for c in scored])
        groups = {"rare": freq == 1, "non-rare": freq == 2, "novel": freq == 0}
        title = f"SWIG-HOI ({report.get('variant')})"
    rows = [(k.replace("_", "-"), _pct(v)) for k, v in report["map"].items()]
    rows.append(("mean recall", _pct(report.get("mean_recall"))))
    parts = [table(["mAP", "%"], rows, numeric=[1])]
    counts = report.get("counts") or {}
    evaluated = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    parts.append(f'<p class="note">{esc(evaluated)}; ranking: {esc(report.get("ranking"))}</p>')
    worst = sorted(scored, key=lambda c: (c["ap"], -c["npos"]))[:WORST]
    if plots and len(ap):
        path = charts.ap_by_group(
            {g: ap[m] for g, m in groups.items()},
            folder / "charts" / "ap-groups.png",
            f"{title}: per-class AP of the classes with ground truth",
        )
        parts.append(f'<div class="charts">{_img(path, folder, "per-class AP by group")}')
        if worst:
            path = charts.worst_classes(
                [c["name"] for c in worst],
                np.array([c["ap"] for c in worst]),
                np.array([c["npos"] for c in worst]),
                folder / "charts" / "worst-classes.png",
                f"the {len(worst)} worst classes with ground truth",
            )
            parts.append(_img(path, folder, "worst classes"))
        parts.append("</div>")
    parts.append("<h3>Worst classes with ground truth</h3>")
    parts.append(
        table(
            ["class", "AP %", "recall %", "GT pairs", "detections", "TP"],
            [
                (c["name"], _pct(c["ap"]), _pct(c["recall"]), c["npos"], c["detections"], c["tp"])
                for c in worst
            ],
            numeric=[1, 2, 3, 4, 5],
        )
    )
    if kind == "hico":
        parts.append(_pr_section(report, classes, folder, plots, pr_classes))
    return "".join(parts)


def _pr_section(
    report: dict[str, Any], classes: list[dict[str, Any]], folder: Path, plots: bool, wanted: list[str]
) -> str:
    head = "<h3>Precision-recall curves</h3>"
    if not plots:
        return ""
    try:
        ids = chosen_classes(classes, wanted)
        curves = hico_curves(report, ids)
    except (HoidataError, OSError) as e:
        return head + f'<p class="note">not drawn: {esc(e)}</p>'
    if not curves:
        return head + '<p class="note">not drawn: the chosen classes have no detections</p>'
    names = {c["hoi_id"]: c["name"] for c in classes}
    named = {f"{names.get(k, k)} (AP {100 * classes[k]['ap']:.1f})": v for k, v in curves.items()}
    path = charts.pr_curves(named, folder / "charts" / "pr-curves.png", "precision-recall of chosen classes")
    return head + f'<div class="charts">{_img(path, folder, "precision-recall curves")}</div>'


def _grounding(report: dict[str, Any], folder: Path, plots: bool) -> str:
    summary = report.get("summary") or {}
    parts = [table(["metric", "%"], [(k, _pct(v)) for k, v in summary.items()], numeric=[1])]
    parts.append(f'<p class="note">{esc(report.get("method_description"))}</p>')
    if plots and report.get("thresholds"):
        path = charts.lines(
            report["thresholds"],
            {"recall": report.get("recall") or []},
            folder / "charts" / "recall-iou.png",
            title="grounding recall by IoU threshold",
            xlabel="IoU threshold (both boxes)",
            ylabel="recall %",
        )
        parts.append(f'<div class="charts">{_img(path, folder, "recall by IoU threshold")}</div>')
    cats = sorted(
        report.get("categories") or [], key=lambda c: (c.get("ar") or 0, -(c.get("gt_pairs") or 0))
    )[:WORST]
    if cats:
        parts.append("<h3>Worst categories</h3>")
        parts.append(
            table(
                ["verb", "object", "GT pairs", "AR %", "recall@0.5 %"],
                [
                    (
                        c.get("verb"),
                        c.get("object"),
                        c.get("gt_pairs"),
                        _pct(c.get("ar")),
                        _pct(c.get("recall50")),
                    )
                    for c in cats
                ],
                numeric=[2, 3, 4],
            )
        )
    return "".join(parts)


def _referring(report: dict[str, Any], folder: Path, plots: bool) -> str:
    summary = report.get("summary") or {}
    parts = [table(["metric", "%"], [(k, _pct(v)) for k, v in summary.items()], numeric=[1])]
    if report.get("bertscore"):
        parts.append(f'<p class="note">BERTScore F1 {_pct(report["bertscore"].get("f1"))} %</p>')
    verbs = sorted(
        (v for v in report.get("verbs") or [] if v.get("gt")), key=lambda v: (v.get("f1") or 0, -v["gt"])
    )[:WORST]
    if plots and verbs:
        path = charts.bars(
            [f"{v['verb']} ({v['gt']})" for v in verbs],
            [v.get("f1") for v in verbs],
            folder / "charts" / "worst-verbs.png",
            title=f"the {len(verbs)} worst verbs by F1",
            xlabel="F1 % (ground-truth count in brackets)",
        )
        parts.append(f'<div class="charts">{_img(path, folder, "worst verbs")}</div>')
    if verbs:
        parts.append(
            table(
                ["verb", "GT", "predicted", "TP", "precision %", "recall %", "F1 %"],
                [
                    (
                        v["verb"],
                        v["gt"],
                        v.get("predicted"),
                        v.get("tp"),
                        _pct(v.get("precision")),
                        _pct(v.get("recall")),
                        _pct(v.get("f1")),
                    )
                    for v in verbs
                ],
                numeric=[1, 2, 3, 4, 5, 6],
            )
        )
    return "".join(parts)


def _hoiqa(report: dict[str, Any], folder: Path, plots: bool) -> str:
    groups = {"all": report.get("overall") or {}, **(report.get("groups") or {})}
    rows = [
        (name, _pct(s.get("noun_accuracy")), _pct(s.get("box_accuracy")), _pct(s.get("mean_iou")))
        for name, s in groups.items()
        if s.get("noun_total") or s.get("box_total")
    ]
    parts = [table(["group", "noun %", "box %", "mIoU %"], rows, numeric=[1, 2, 3])]
    subsets = [
        (n, _pct(s.get("accuracy")), s.get("correct"), s.get("total"))
        for n, s in (report.get("subsets") or {}).items()
        if s.get("total")
    ]
    if subsets:
        parts.append(table(["subset", "accuracy %", "correct", "total"], subsets, numeric=[1, 2, 3]))
    shown = [(n, s) for n, s in groups.items() if s.get("box_total")]
    if plots and shown:
        path = charts.bars(
            [n for n, _ in shown],
            [s.get("box_accuracy") for _, s in shown],
            folder / "charts" / "box-accuracy.png",
            title="HOI-QA box accuracy (IoU > 0.5) by group",
            xlabel="box accuracy %",
        )
        parts.append(f'<div class="charts">{_img(path, folder, "box accuracy by group")}</div>')
    return "".join(parts)
