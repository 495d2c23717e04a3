"""Comparing two readers' output: every array of a ``SourceBatch`` must agree."""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from hoidata.sources.base import SourceBatch

ARRAYS = tuple(f.name for f in fields(SourceBatch) if f.type == "np.ndarray")


def assert_same_arrays(a: SourceBatch, b: SourceBatch) -> None:
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
