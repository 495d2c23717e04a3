"""QA items (HOI-QA, and referral questions from any HOI dataset) as the text a model is shown.

A canonical QA item keeps its boxes beside the text: each ``<box>`` of the question (answer) is the
next box of ``question_boxes`` (``answer_boxes``), in canonical pixels. Here the placeholders become
boxes written either in the model profile's frame (``profile``: what the Qwen VL families read and
write) or on HOI-Ref's 0–100 grid (``grid``: ``{<x1><y1><x2><y2>}``, integers), and the question is
prefixed with its task tag (``[refer] Where is the knife?``) as HOI-Ref trains. ``build-sft hoiqa``
and ``predict`` call the same :func:`render_items`, so a model is asked at test time exactly as it
was taught. Everything is column-wise: one pass over all items of a table, no per-item Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.profiles import Profile
from hoidata.profiles.text import join_texts
from hoidata.schemas.canonical import BOX_PLACEHOLDER
from hoidata.sources.hoiqa import BOX_TEXT

BOX_FORMATS = ("profile", "grid")
TASK_TAGS = ("grounding", "refer", "detection", "identify", "vqa")  # HOI-Ref's tags
GRID = 100


@dataclass
class QAItems:
    """A table's QA items, flattened: item → row, its index in the row, and its fields."""

    row: np.ndarray
    index: np.ndarray  # position in the row's ``qa`` list (the ``#k`` of its id)
    task: pa.StringArray
    question: pa.StringArray
    answer: pa.StringArray
    question_boxes: pa.ListArray  # list<fixed_size_list<float32, 4>>, canonical pixels
    answer_boxes: pa.ListArray

    def __len__(self) -> int:
        return len(self.row)

    def take(self, idx: np.ndarray) -> QAItems:
        sel = pa.array(idx, pa.int64())
        return QAItems(
            self.row[idx],
            self.index[idx],
            self.task.take(sel),
            self.question.take(sel),
            self.answer.take(sel),
            self.question_boxes.take(sel),
            self.answer_boxes.take(sel),
        )


def flatten_items(qa: pa.Array | pa.ChunkedArray) -> QAItems:
    """The ``qa`` column (list of QA_ITEM structs per row) → one entry per item."""
    qa = qa.combine_chunks() if isinstance(qa, pa.ChunkedArray) else qa
    qa = qa.fill_null(pa.scalar([], qa.type)) if qa.null_count else qa
    offsets = qa.offsets.to_numpy().astype(np.int64)
    flat = qa.values.slice(offsets[0], offsets[-1] - offsets[0])
    counts = np.diff(offsets)
    row = np.repeat(np.arange(len(qa)), counts)
    index = np.arange(len(row)) - np.repeat(offsets[:-1] - offsets[0], counts)
    return QAItems(
        row,
        index,
        flat.field("task"),
        flat.field("question"),
        flat.field("answer"),
        flat.field("question_boxes"),
        flat.field("answer_boxes"),
    )


def item_problems(items: QAItems) -> list[tuple[int, str, str]]:
    """``(item, field, reason)`` of every item that cannot be written: an unknown task tag, or
    ``<box>`` placeholders that do not pair up with the item's boxes."""
    problems = []
    tags = pc.is_in(items.task.fill_null(""), pa.array(TASK_TAGS)).to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(~tags):
        problems.append((int(i), "task", f"unknown task tag {items.task[int(i)].as_py()!r}"))
    for name in ("question", "answer"):
        text = getattr(items, name).fill_null("")
        marks = pc.count_substring(text, BOX_PLACEHOLDER).to_numpy(zero_copy_only=False)
        boxes = pc.list_value_length(getattr(items, f"{name}_boxes")).fill_null(0)
        n_boxes = boxes.to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(marks != n_boxes):
            problems.append(
                (
                    int(i),
                    f"{name}_boxes",
                    f"{marks[i]} {BOX_PLACEHOLDER} placeholder(s) in the {name} but {n_boxes[i]} box(es)",
                )
            )
    return sorted(problems)


def grid_box_texts(boxes: np.ndarray, widths: np.ndarray, heights: np.ndarray) -> pa.StringArray:
    """Canonical boxes → ``{<x1><y1><x2><y2>}`` on the 0–100 grid (rounded, clamped), as HOI-Ref writes."""
    scale = np.stack([widths, heights, widths, heights], axis=1)
    grid = np.clip(np.rint(boxes / scale * GRID), 0, GRID).astype(np.int64)
    c = [pa.array(grid[:, i]).cast(pa.string()) for i in range(4)]
    return join_texts(["{<", c[0], "><", c[1], "><", c[2], "><", c[3], ">}"], len(boxes))


def box_texts(
    boxes: np.ndarray, widths: np.ndarray, heights: np.ndarray, box_format: str, profile: Profile
) -> pa.StringArray:
    """Canonical boxes of images ``widths × heights`` → text in ``box_format``."""
    if box_format == "grid":
        return grid_box_texts(boxes, widths, heights)
    return profile.box_texts(profile.to_model(boxes, widths, heights))


def read_boxes(text: str, box_format: str, profile: Profile, width: float, height: float) -> np.ndarray:
    """Every box written in ``text`` in ``box_format``, back in canonical pixels (N, 4)."""
    if box_format == "grid":
        grid = [[float(v) for v in m.groups()] for m in BOX_TEXT.finditer(text)]
        return np.array(grid, np.float64).reshape(-1, 4) * np.array([width, height] * 2) / GRID
    return profile.parse_boxes(text, width, height)


def fill_boxes(
    text: pa.StringArray,
    boxes: pa.ListArray,
    widths: np.ndarray,
    heights: np.ndarray,
    box_format: str,
    profile: Profile,
) -> pa.StringArray:
    """Each ``<box>`` of ``text[i]`` replaced by the next box of ``boxes[i]`` (counts already checked)."""
    n = len(text)
    counts = pc.list_value_length(boxes).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    if not counts.any():
        return text
    owner = np.repeat(np.arange(n), counts)
    flat = pc.list_flatten(boxes)
    values = pc.list_flatten(flat).to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, 4)
    written = box_texts(values, widths[owner], heights[owner], box_format, profile)
    parts = pc.split_pattern(text, BOX_PLACEHOLDER)  # counts[i] + 1 parts each
    flat_parts = pc.list_flatten(parts)
    # item i's sequence: part0 box0 part1 box1 ... part_n; parts first, then the boxes, in one array
    part_start = np.concatenate([[0], np.cumsum(counts + 1)])[:-1]
    box_start = np.concatenate([[0], np.cumsum(counts)])[:-1]
    seq_start = np.concatenate([[0], np.cumsum(2 * counts + 1)])
    take = np.empty(seq_start[-1], np.int64)
    j_part = np.arange(len(flat_parts)) - np.repeat(part_start, counts + 1)
    take[np.repeat(seq_start[:-1], counts + 1) + 2 * j_part] = np.arange(len(flat_parts))
    j_box = np.arange(len(written)) - np.repeat(box_start, counts)
    take[np.repeat(seq_start[:-1], counts) + 2 * j_box + 1] = len(flat_parts) + np.arange(len(written))
    pieces = pa.concat_arrays([flat_parts.cast(pa.string()), written]).take(pa.array(take))
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(seq_start, pa.int32()), pieces), "")
    return joined


@dataclass
class RenderedItems:
    question: pa.StringArray
    answer: pa.StringArray


def render_items(
    items: QAItems,
    widths: np.ndarray,
    heights: np.ndarray,
    profile: Profile,
    box_format: str = "profile",
    tags: bool = True,
) -> RenderedItems:
    """Questions and answers as the model sees them; ``widths``/``heights`` per item (the image the
    model is shown: boxes in the profile's frame are relative to its resize of that image)."""
    if box_format not in BOX_FORMATS:
        raise ValueError(f"box format must be one of {', '.join(BOX_FORMATS)}, got {box_format!r}")
    w, h = np.asarray(widths, np.float64), np.asarray(heights, np.float64)
    question = fill_boxes(items.question.fill_null(""), items.question_boxes, w, h, box_format, profile)
    answer = fill_boxes(items.answer.fill_null(""), items.answer_boxes, w, h, box_format, profile)
    if tags:
        question = join_texts(["[", items.task, "] ", question], len(items))
    return RenderedItems(question, answer)
