"""Cards of ``hoidata predict`` output: each image of the evaluated dataset with the predicted
pairs drawn (person and object, verb, rank) over its ground truth (the "ground truth" layer), and
the model's raw answer."""

from __future__ import annotations

from typing import Any

from hoidata.show.html import box, esc, frame
from hoidata.show.thumbnails import ImageRef

COLUMNS = ["sample_id", "predictions", "completion", "finish_reason", "error"]
GT_COLUMNS = ["sample_id", "image", "width", "height", "instances", "interactions"]


def prediction_card(row: dict[str, Any], gt: dict[str, Any] | None, image: ImageRef | None) -> str:
    preds = row.get("predictions") or []
    meta = [f"{len(preds)} predictions", f"finish {row.get('finish_reason')}"]
    parts = [
        f'<article class="card" data-sample-id="{esc(row.get("sample_id"))}"><h2>{esc(row.get("sample_id"))}</h2>',
        f'<div class="meta">{esc(" · ".join(meta))}</div>',
    ]
    if row.get("error"):
        parts.append(f'<p class="note">error: {esc(row["error"])}</p>')
    if gt is None or not gt.get("width") or not gt.get("height"):
        parts.append(
            '<p class="note">not in the ground truth (or its size is unknown): nothing to draw on</p>'
        )
    elif image is not None and image.error:
        parts.append(f'<p class="note">{esc(image.error)}</p>')
    else:
        w, h = gt["width"], gt["height"]
        parts.append(frame(image, w, h, _predicted(preds, w, h) + _truth(gt, w, h)))
    items = []
    for k, p in enumerate(preds):
        rank = p.get("rank") if p.get("rank") is not None else k
        score = f", score {p['score']:.3g}" if p.get("score") is not None else ""
        obj = p.get("object") or "(no object)"
        items.append(
            f'<li data-hl="p{k}h p{k}o">{k}. person —{esc(p.get("verb"))}→ {esc(obj)} (rank {rank}{score})</li>'
        )
    if items:
        parts.append(f'<ul class="links">{"".join(items)}</ul>')
    parts.append(
        f"<details><summary>answer</summary><pre>{esc(row.get('completion'))}</pre></details></article>"
    )
    return "".join(parts)


def _predicted(preds: list[dict[str, Any]], w: float, h: float) -> list[str]:
    out = []
    for k, p in enumerate(preds):
        if p.get("person_bbox") is not None:
            out.append(
                box(_ordered(p["person_bbox"]), w, h, "human", f"{k} {p.get('verb') or ''}", box_id=f"p{k}h")
            )
        if p.get("object_bbox") is not None:
            out.append(
                box(
                    _ordered(p["object_bbox"]),
                    w,
                    h,
                    "object",
                    f"{k} {p.get('object') or ''}",
                    box_id=f"p{k}o",
                )
            )
    return out


def _truth(gt: dict[str, Any], w: float, h: float) -> list[str]:
    instances = gt.get("instances") or []
    return [box(a["bbox"], w, h, "gt", f"gt {a['label']}") for a in instances]


def _ordered(b: Any) -> list[float]:
    x1, x2 = sorted((float(b[0]), float(b[2])))
    y1, y2 = sorted((float(b[1]), float(b[3])))
    return [x1, y1, x2, y2]
