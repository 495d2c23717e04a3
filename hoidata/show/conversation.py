"""A conversation as the model sees it, with every box written in it decoded back through the
profile and drawn on the image the model is shown (the profile's resize of the stored image).

A box in the text is read in the profile's frame (0–1000 relative, or pixels of the resized image)
and mapped to pixels of the resized image: ``Profile.from_model`` gives canonical pixels of the
stored image, scaled by resized / stored size. A frame bug (the wrong frame, a missing resize)
therefore shows as a box beside its object. Tool calls' ``bbox_2d`` arguments are JSON in every
profile; text boxes follow the profile's style.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hoidata.profiles import Profile
from hoidata.profiles.text import BoxStyle, box_pattern
from hoidata.show.html import box, esc
from hoidata.show.thumbnails import ImageRef

TOOL_RESPONSE = "<tool_response>"
ROLE_CLASS = {"user": "question", "assistant": "answer"}


@dataclass(frozen=True)
class View:
    """The scene image as stored (``width × height``) and as the model is shown it (``resized``)."""

    profile: Profile
    width: float
    height: float
    resized_width: float
    resized_height: float

    @classmethod
    def of(
        cls, profile: Profile, width: float, height: float, resized: tuple[Any, Any] | None = None
    ) -> View:
        if resized is None or not resized[0]:
            rw, rh = profile.resized([width], [height])
            resized = (int(rw[0]), int(rh[0]))
        return cls(profile, float(width), float(height), float(resized[0]), float(resized[1]))

    def scale(self) -> np.ndarray:
        sx, sy = self.resized_width / self.width, self.resized_height / self.height
        return np.array([sx, sy, sx, sy])

    def decode(self, model_box: list[float]) -> np.ndarray:
        """A box as the model wrote it → pixels of the resized image."""
        canonical = self.profile.from_model([model_box], self.width, self.height)[0]
        return canonical * self.scale()

    def from_canonical(self, bbox: Any) -> np.ndarray:
        """A canonical box of the stored image → pixels of the resized image."""
        return np.asarray(bbox, np.float64) * self.scale()


@dataclass
class Rendered:
    """The turns' HTML and the boxes decoded from them, drawn on the scene image."""

    turns: list[str] = field(default_factory=list)
    boxes: list[str] = field(default_factory=list)
    count: int = 0
    drawn: dict[tuple[float, ...], int] = field(default_factory=dict)  # a box written again is drawn once


def render_messages(
    messages: list[dict[str, Any]],
    images: list[ImageRef | None],
    view: View,
    out: Rendered,
    *,
    side: str = "",
    first_image: int = 0,
) -> int:
    """Append the turns of ``messages`` to ``out``; ``images`` are the row's images, of which the
    conversation's image blocks show ``first_image`` onwards (the first of the row is the scene,
    drawn above the turns). ``side`` (chosen/rejected) colours a preference pair's boxes. Returns
    the index of the next image."""
    next_image = first_image
    for m in messages or []:
        role = m.get("role") or "user"
        blocks = []
        is_tool = any(TOOL_RESPONSE in (b.get("text") or "") for b in m.get("content") or [])
        cls = "tool" if is_tool else ROLE_CLASS.get(role, "answer")
        for b in m.get("content") or []:
            if b.get("type") == "image":
                blocks.append(_image_block(images, next_image))
                next_image += 1
            else:
                blocks.append(_text(b.get("text") or "", view, view.profile.style, side or cls, out))
        for call in m.get("tool_calls") or []:
            fn = call.get("function") or {}
            args = _text(fn.get("arguments") or "", view, BoxStyle.JSON, side or "call", out)
            blocks.append(f'<span class="toolcall">{esc(fn.get("name"))}({args})</span>')
        turn_cls = "tool" if is_tool else esc(role)
        label = "tool response" if is_tool else role
        out.turns.append(
            f'<div class="turn {turn_cls}"><span class="role">{esc(label)}</span>{"".join(blocks)}</div>'
        )
    return next_image


def ground_truth_boxes(pairs: list[dict[str, Any]], view: View) -> list[str]:
    """The sample's ground-truth pairs on the resized image (dashed; the "ground truth" layer)."""
    out = []
    for j, p in enumerate(pairs or []):
        for key, who in (("person_bbox", "person"), ("object_bbox", p.get("object") or "object")):
            if p.get(key) is not None:
                b = view.from_canonical(p[key])
                tag = f"gt {who}" + (f" {p['verb']}" if key == "person_bbox" and p.get("verb") else "")
                out.append(box(b, view.resized_width, view.resized_height, "gt", tag, box_id=f"g{j}{key[0]}"))
    return out


def _image_block(images: list[ImageRef | None], k: int) -> str:
    if k == 0:
        return '<span class="badge">image: the model view above</span>'
    ref = images[k] if k < len(images) else None
    if ref is None or ref.thumb is None:
        return f'<span class="badge">image {k} ({esc(ref.error) if ref else "missing"})</span>'
    return f'<a href="{esc(ref.original)}"><img class="crop" src="{esc(ref.thumb)}" alt="image {k}"></a>'


def _text(text: str, view: View, style: BoxStyle, cls: str, out: Rendered) -> str:
    """``text`` escaped, each box in it a highlighted span tied to the box drawn on the image."""
    pieces, last = [], 0
    for match in box_pattern(style).finditer(text):
        try:
            numbers = [float(g) for g in match.groups()]
            drawn = view.decode(numbers)
        except (ValueError, OverflowError):
            continue
        x1, x2 = sorted((drawn[0], drawn[2]))
        y1, y2 = sorted((drawn[1], drawn[3]))
        key = (round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2))
        k = out.drawn.get(key, out.count)
        if k == out.count:
            out.drawn[key] = k
            out.count += 1
            title = f"written {match.group(0)} → {x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f} on the model view"
            out.boxes.append(
                box(
                    [x1, y1, x2, y2],
                    view.resized_width,
                    view.resized_height,
                    f"decoded {cls}",
                    str(k),
                    box_id=f"d{k}",
                    title=title,
                )
            )
        pieces.append(esc(text[last : match.start()]))
        pieces.append(f'<span class="boxref {cls}" data-id="d{k}">{esc(match.group(0))}</span>')
        last = match.end()
    pieces.append(esc(text[last:]))
    return _marks("".join(pieces))


def _marks(escaped: str) -> str:
    """Reasoning and answer tags stand out a little (they are part of what is scored)."""
    return re.sub(r"(&lt;/?(?:think|answer|tool_response)&gt;)", r"<b>\1</b>", escaped)
