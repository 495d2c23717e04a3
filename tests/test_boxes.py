"""Box conventions: exact round trips, and the Qwen resize rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hoidata.schemas import boxes as B

sizes = st.tuples(st.integers(8, 4000), st.integers(8, 4000))


@st.composite
def boxes_in_image(draw: st.DrawFn, integer: bool = False) -> tuple[np.ndarray, int, int]:
    w, h = draw(sizes)
    n = draw(st.integers(1, 8))
    out = []
    for _ in range(n):
        if integer:
            x1, x2 = sorted(draw(st.lists(st.integers(0, w), min_size=2, max_size=2, unique=True)))
            y1, y2 = sorted(draw(st.lists(st.integers(0, h), min_size=2, max_size=2, unique=True)))
        else:
            x1, x2 = sorted(draw(st.lists(st.floats(0, w), min_size=2, max_size=2)))
            y1, y2 = sorted(draw(st.lists(st.floats(0, h), min_size=2, max_size=2)))
        out.append([x1, y1, x2, y2])
    return np.array(out, dtype=np.float64), w, h


def test_official_one_based_meaning() -> None:
    # A HICO box covering MATLAB pixels 1..10 (the first ten columns) spans [0, 10) continuously.
    assert B.from_inclusive([[1, 1, 10, 20]], base=1).tolist() == [[0, 0, 10, 20]]
    assert B.from_inclusive([[0, 0, 9, 19]], base=0).tolist() == [[0, 0, 10, 20]]
    # the official +1 width convention equals the canonical width
    b = np.array([[208, 33, 427, 300]])
    c = B.from_inclusive(b)
    assert (c[:, 2] - c[:, 0]).item() == 427 - 208 + 1


@given(boxes_in_image(integer=True))
def test_inclusive_round_trip_is_exact(data: tuple[np.ndarray, int, int]) -> None:
    b, _, _ = data
    for base in (0, 1):
        assert np.array_equal(B.from_inclusive(B.to_inclusive(b, base), base), b)
    for origin in B.BoxOrigin:
        assert np.array_equal(B.from_origin(B.to_origin(b, origin), origin), b)


@given(boxes_in_image(), st.sampled_from([1.0, 100.0, 1000.0]))
def test_normalized_round_trip(data: tuple[np.ndarray, int, int], scale: float) -> None:
    b, w, h = data
    rel = B.to_normalized(b, w, h, scale)
    assert (rel >= 0).all() and (rel <= scale + 1e-9).all()
    np.testing.assert_allclose(B.from_normalized(rel, w, h, scale), b, rtol=0, atol=1e-9 * max(w, h))


@given(boxes_in_image(), st.sampled_from([100.0, 1000.0]))
def test_quantized_round_trip_within_half_a_step(data: tuple[np.ndarray, int, int], scale: float) -> None:
    b, w, h = data
    q = B.quantize(B.to_normalized(b, w, h, scale), high=scale)
    back = B.from_normalized(q, w, h, scale)
    step = np.array([w, h, w, h]) / scale
    assert (np.abs(back - b) <= step / 2 + 1e-9).all()


@given(boxes_in_image(), st.sampled_from([28, 32]))
def test_resized_round_trip(data: tuple[np.ndarray, int, int], factor: int) -> None:
    b, w, h = data
    if max(w, h) / min(w, h) > 200:
        return
    rh, rw = B.smart_resize(h, w, factor=factor)
    r = B.to_resized(b, w, h, rw, rh)
    assert (r[:, 0::2] <= rw + 1e-9).all() and (r[:, 1::2] <= rh + 1e-9).all()
    np.testing.assert_allclose(B.from_resized(r, w, h, rw, rh), b, atol=1e-9 * max(w, h))
    q = B.quantize(r)
    back = B.from_resized(q, w, h, rw, rh)
    assert (np.abs(back[:, 0::2] - b[:, 0::2]) <= w / rw / 2 + 1e-9).all()
    assert (np.abs(back[:, 1::2] - b[:, 1::2]) <= h / rh / 2 + 1e-9).all()


def test_per_box_image_sizes_broadcast() -> None:
    b = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
    rel = B.to_normalized(b, np.array([10, 20]), np.array([10, 40]), 1000)
    assert rel.tolist() == [[0, 0, 1000, 1000], [0, 0, 500, 250]]


def test_smart_resize_matches_the_documented_example() -> None:
    # 1000x700 with max_pixels = 256·28² → 532x364 (w x h) and 247 tokens of 28x28
    h, w = B.smart_resize(700, 1000, factor=28, max_pixels=256 * 28 * 28)
    assert (w, h) == (532, 364)
    assert (w // 28) * (h // 28) == 247


@given(st.integers(1, 5000), st.integers(1, 5000), st.sampled_from([28, 32]))
def test_smart_resize_invariants(h: int, w: int, factor: int) -> None:
    if max(h, w) / min(h, w) > 200:
        with pytest.raises(ValueError):
            B.smart_resize(h, w, factor)
        return
    min_px, max_px = 4 * factor * factor, 1280 * factor * factor
    rh, rw = B.smart_resize(h, w, factor, min_px, max_px)
    assert rh % factor == 0 and rw % factor == 0
    assert rh * rw <= max_px
    assert rh * rw >= min_px


def test_union() -> None:
    assert B.union([[0, 0, 10, 10]], [[5, -2, 20, 8]]).tolist() == [[0, -2, 20, 10]]
