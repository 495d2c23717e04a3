"""Boxes as the text writes them → the visual tokens inside them.

A Qwen VL image of ``grid_thw = (t, h, w)`` patches becomes ``t · h/m · w/m`` visual tokens after
the patch merger (``m`` = merge size), in row-major order of the merged grid; one merged cell
covers ``patch · m`` pixels of the resized image per side. A box in the profile's frame (0–1000
relative, or pixels of the resized image) is converted to that grid once: the cells whose centres
it holds, or the one cell holding its middle when it is smaller than that. Nothing here needs torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hoidata.sft.spatial_prompt import box_problem, frame_extent


@dataclass(frozen=True)
class MergedGrid:
    """One image's visual tokens: ``frames × rows × cols`` merged cells of ``cell`` resized pixels."""

    frames: int
    rows: int
    cols: int
    cell: int

    @classmethod
    def from_thw(cls, thw: tuple[int, int, int], merge: int, patch: int) -> MergedGrid:
        t, h, w = (int(v) for v in thw)
        return cls(t, h // merge, w // merge, patch * merge)

    @property
    def tokens(self) -> int:
        return self.frames * self.rows * self.cols

    def frame_size(self, frame: str) -> tuple[float, float]:
        """Width and height of the frame boxes are written in."""
        return frame_extent(frame, self.cols * self.cell, self.rows * self.cell)


def box_cells(box: list[float], grid: MergedGrid, frame: str) -> np.ndarray:
    """Indices (into the image's visual tokens) of the merged cells inside ``box``, every frame.

    ``ValueError`` when the box is inverted or outside the image (see :func:`box_problem`)."""
    width, height = grid.frame_size(frame)
    problem = box_problem(box, width, height, frame)
    if problem:
        raise ValueError(problem)
    c0, c1 = _span(box[0], box[2], width, grid.cols)
    r0, r1 = _span(box[1], box[3], height, grid.rows)
    per_frame = (np.arange(r0, r1 + 1)[:, None] * grid.cols + np.arange(c0, c1 + 1)[None, :]).reshape(-1)
    if grid.frames == 1:
        return per_frame
    return (np.arange(grid.frames)[:, None] * grid.rows * grid.cols + per_frame[None, :]).reshape(-1)


def _span(low: float, high: float, extent: float, cells: int) -> tuple[int, int]:
    """First and last cell whose centre ``[low, high]`` (in a frame of ``extent``) holds; the cell of
    its middle when it holds no centre (a box smaller than a cell)."""
    lo, hi = low * cells / extent, high * cells / extent
    first, last = math.ceil(lo - 0.5), math.floor(hi - 0.5)
    if last < first:
        first = last = math.floor((lo + hi) / 2)
    return min(cells - 1, max(0, first)), min(cells - 1, max(0, last))
