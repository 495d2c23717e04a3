"""Cards of canonical and boxes datasets: the image with its instances' boxes and labels, the
interactions as person -verb-> object (hover or click lights up both boxes and their union), union
and refer boxes, and HOI-QA items with their boxes."""

from __future__ import annotations

from typing import Any

from hoidata.schemas.canonical import BOX_PLACEHOLDER
from hoidata.show.html import box, esc, frame
from hoidata.show.thumbnails import ImageRef

COLUMNS = [
    "sample_id",
    "source",
    "split",
    "image",
    "width",
    "height",
    "resized_width",
    "resized_height",
    "instances",
    "interactions",
    "qa",
]


def canonical_card(row: dict[str, Any], image: ImageRef | None) -> str:
    w, h = row.get("width"), row.get("height")
    instances = row.get("instances") or []
    interactions = row.get("interactions") or []
    meta = [
        row.get("source"),
        row.get("split"),
        f"{len(instances)} instances",
        f"{len(interactions)} interactions",
    ]
    if row.get("resized_width"):
        meta.append(f"model view {row['resized_width']}×{row['resized_height']}")
    parts = [
        f'<article class="card"{_sample(row)}><h2>{esc(row.get("sample_id"))}</h2>',
        f'<div class="meta">{esc(" · ".join(str(m) for m in meta if m))}</div>',
    ]
    if not w or not h:
        parts.append('<p class="note">image size unknown: boxes cannot be placed</p>')
    else:
        boxes = [_instance_box(k, a, w, h) for k, a in enumerate(instances)]
        boxes += [_union_box(j, it, instances, w, h) for j, it in enumerate(interactions)]
        qa_boxes, qa_items = _qa(row.get("qa") or [], w, h)
        parts.append(_image(image, w, h, boxes + qa_boxes))
        parts.append(_interactions(interactions, instances))
        parts.append(qa_items)
    parts.append("</article>")
    return "".join(parts)


def _sample(row: dict[str, Any]) -> str:
    return f' data-sample-id="{esc(row.get("sample_id"))}"'


def _image(image: ImageRef | None, w: float, h: float, boxes: list[str]) -> str:
    if image is not None and image.error:
        return f'<p class="note">{esc(image.error)}</p>'
    return frame(image, w, h, boxes)


def _instance_box(k: int, a: dict[str, Any], w: float, h: float) -> str:
    title = f"{a['label']} {k}: {_fmt(a['bbox'])}"
    if a.get("model_bbox") is not None:
        title += f"; model frame {list(a['model_bbox'])}"
    cls = "human" if a.get("is_human") else "object"
    return box(a["bbox"], w, h, cls, f"{a['label']} {k}", box_id=f"i{k}", title=title)


def _union_box(j: int, it: dict[str, Any], instances: list[dict[str, Any]], w: float, h: float) -> str:
    """The interaction's union box as stored (boxes datasets), else person ∪ object."""
    union = it.get("union_bbox")
    if union is None:
        person = instances[it["subject"]]["bbox"]
        other = instances[it["object"]]["bbox"] if 0 <= it.get("object", -1) < len(instances) else person
        union = [
            min(person[0], other[0]),
            min(person[1], other[1]),
            max(person[2], other[2]),
            max(person[3], other[3]),
        ]
    return box(union, w, h, "union", f"union {j}", box_id=f"u{j}", title=f"union {j}: {_fmt(union)}")


def _interactions(interactions: list[dict[str, Any]], instances: list[dict[str, Any]]) -> str:
    if not interactions:
        return '<p class="note">no interactions</p>'
    items = []
    for j, it in enumerate(interactions):
        s, o = it["subject"], it.get("object", -1)
        obj = f"{instances[o]['label']} {o}" if 0 <= o < len(instances) else "(no object)"
        ids = " ".join([f"i{s}", *([f"i{o}"] if o >= 0 else []), f"u{j}"])
        refer = " · refer boxes: person, object, union" if it.get("refer_boxes") is not None else ""
        items.append(
            f'<li data-hl="{ids}">{esc(instances[s]["label"])} {s} —{esc(it["verb"])}→ {esc(obj)}'
            f'<span class="note"> hoi {esc(it.get("hoi_id"))}{refer}</span></li>'
        )
    return f'<ul class="links">{"".join(items)}</ul>'


def _qa(items: list[dict[str, Any]], w: float, h: float) -> tuple[list[str], str]:
    """HOI-QA questions and answers: each ``<box>`` in the text names the next box, drawn."""
    boxes: list[str] = []
    lines = []
    for j, item in enumerate(items):
        texts = []
        for side, cls in (("question", "question"), ("answer", "answer")):
            chunks = str(item.get(side) or "").split(BOX_PLACEHOLDER)
            side_boxes = item.get(f"{side}_boxes") or []
            out = [esc(chunks[0])]
            for k, rest in enumerate(chunks[1:]):
                box_id = f"q{j}{side[0]}{k}"
                if k < len(side_boxes):
                    boxes.append(box(side_boxes[k], w, h, cls, f"{side[0]}{k}", box_id=box_id))
                out.append(f'<span class="boxref {cls}" data-id="{box_id}">&lt;box&gt;</span>{esc(rest)}')
            texts.append(f"<b>{side[0].upper()}</b> {''.join(out)}")
        lines.append(
            f'<div class="turn user"><span class="role">{esc(item.get("task"))}</span>{"<br>".join(texts)}</div>'
        )
    return boxes, "".join(lines)


def _fmt(b: Any) -> str:
    return "[" + ", ".join(f"{float(v):g}" for v in b) + "]"
