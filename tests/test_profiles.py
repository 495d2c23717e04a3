"""Model profiles: frames, box text, answers read back, and the vectorised resize rule."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hoidata.errors import HoidataError
from hoidata.profiles import PROFILES, get_profile
from hoidata.profiles.text import BOX_END, BOX_START, REF_END, REF_START
from hoidata.schemas.boxes import smart_resize, smart_resize_many

NAMES = sorted(PROFILES)


@st.composite
def image_and_boxes(draw: st.DrawFn) -> tuple[np.ndarray, int, int]:
    w, h = draw(st.integers(16, 5000)), draw(st.integers(16, 5000))
    n = draw(st.integers(1, 6))
    rows = []
    for _ in range(n):
        x1, x2 = sorted(draw(st.lists(st.floats(0, w), min_size=2, max_size=2)))
        y1, y2 = sorted(draw(st.lists(st.floats(0, h), min_size=2, max_size=2)))
        rows.append([x1, y1, x2, y2])
    return np.array(rows), w, h


@given(st.integers(1, 6000), st.integers(1, 6000), st.sampled_from([28, 32]), st.integers(1, 2048))
@settings(max_examples=300)
def test_vectorised_smart_resize_equals_the_scalar_rule(h: int, w: int, factor: int, max_tokens: int) -> None:
    if max(h, w) / min(h, w) > 200:
        return
    max_pixels = max_tokens * factor * factor
    min_pixels = min(4 * factor * factor, max_pixels)
    rh, rw = smart_resize_many([h], [w], factor, min_pixels, max_pixels)
    assert (int(rh[0]), int(rw[0])) == smart_resize(h, w, factor, min_pixels, max_pixels)


@pytest.mark.parametrize("name", NAMES)
@given(data=image_and_boxes())
@settings(max_examples=60, deadline=None)
def test_model_frame_round_trip_within_quantization(name: str, data: tuple[np.ndarray, int, int]) -> None:
    boxes, w, h = data
    p = get_profile(name)
    model = p.to_model(boxes, w, h)
    back = p.from_model(model, w, h)
    tol = p.quantization_error(w, h) + 1e-6
    assert np.all(np.abs(back - boxes) <= tol)


@pytest.mark.parametrize("name", NAMES)
@given(data=image_and_boxes())
@settings(max_examples=40, deadline=None)
def test_answers_format_and_parse_back(name: str, data: tuple[np.ndarray, int, int]) -> None:
    """Formatting GT pairs as the model would, then parsing them, gives the canonical boxes back."""
    boxes, w, h = data
    p = get_profile(name)
    n = len(boxes)
    person, obj = p.to_model(boxes, w, h), p.to_model(boxes[::-1], w, h)
    has_obj = np.arange(n) % 3 != 2  # some interactions without an object
    verbs = pa.array(["sit on"] * n)
    objects = pa.array(["sports ball"] * n)
    entries = p.pair_texts(person, obj, has_obj, verbs, objects)
    answer = p.join_entries(pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), entries))[0].as_py()
    parsed = p.parse_pairs(f"<think>looking</think><answer>{answer}</answer>", w, h)
    assert len(parsed) == n
    tol = p.quantization_error(w, h) + 1e-6
    for i, pair in enumerate(parsed):
        assert np.all(np.abs(pair.person_box - boxes[i]) <= tol)
        assert pair.verb == "sit_on"
        if has_obj[i]:
            assert np.all(np.abs(pair.object_box - boxes[::-1][i]) <= tol)
            assert pair.object == "sports_ball"
        else:
            assert pair.object_box is None


def test_box_text_per_family() -> None:
    box = [[10, 20, 30, 40]]
    assert get_profile("qwen2.5-vl").box_text(box[0]) == "[10, 20, 30, 40]"
    assert get_profile("qwen3-vl").box_text(box[0]) == "[10, 20, 30, 40]"
    assert get_profile("qwen2-vl").box_text(box[0]) == f"{BOX_START}(10,20),(30,40){BOX_END}"


def test_frames_follow_the_documented_conventions() -> None:
    # Qwen2.5-VL: absolute pixels on the smart_resize'd image (1000x700 → 1008x700 at the default budget)
    p25 = get_profile("qwen2.5-vl")
    rw, rh = p25.resized([1000], [700])
    assert (int(rw[0]), int(rh[0])) == (1008, 700)
    assert p25.to_model([[0, 0, 1000, 700]], 1000, 700).tolist() == [[0, 0, 1008, 700]]
    # Qwen2-VL / Qwen3-VL: round(x / w * 1000)
    for name in ("qwen2-vl", "qwen3-vl"):
        assert get_profile(name).to_model([[250, 70, 500, 700]], 1000, 700).tolist() == [
            [250, 100, 500, 1000]
        ]
    # the documented budget example: 1000x700 with 256·28² pixels → 532x364, 247 tokens
    small = get_profile("qwen2.5-vl", max_pixels=256 * 28 * 28)
    assert small.image_tokens(1000, 700) == 247
    assert get_profile("qwen3-vl").factor == 32


def test_parsers_survive_what_models_write() -> None:
    p = get_profile("qwen2.5-vl")
    fenced = '```json\n[{"person_bbox_2d": [1, 2, 30, 40], "verb": "ride", "object": "bicycle"}]\n```'
    assert len(p.parse_pairs(fenced, 100, 100)) == 1
    prose = 'Sure! {"person_bbox_2d": [1, 2, 30, 40], "verb": "hold", "object_bbox_2d": [5, 5, 9, 9]} done.'
    (pair,) = p.parse_pairs(prose, 100, 100)
    assert pair.verb == "hold" and pair.object_box is not None
    native = '[{"bbox_2d": [1, 2, 30, 40], "label": "person"}]'
    assert len(p.parse_pairs(native, 100, 100)) == 1
    for junk in (
        "",
        "no boxes here",
        "[1, 2, 3",
        '[{"person_bbox_2d": "x"}]',
        "{" * 500,
        "[" * 500 + "]" * 500,
    ):
        assert p.parse_pairs(junk, 100, 100) == []
    assert p.parse_boxes("a [1, 2, 3, 4] and [5, 6, 7, 8]", 100, 100).shape == (2, 4)
    # Qwen2-VL: decoders drop the special tokens (skip_special_tokens=True); the boxes stay readable
    q2 = get_profile("qwen2-vl")
    text = f"{REF_START}person{REF_END}{BOX_START}(100,200),(300,400){BOX_END} ride {REF_START}horse{REF_END}"
    text += f"{BOX_START}(0,0),(1000,1000){BOX_END}"
    stripped = "person(100,200),(300,400) ride horse(0,0),(1000,1000)"
    for t in (text, stripped):
        (pair,) = q2.parse_pairs(t, 1000, 500)
        assert pair.person_box.tolist() == [100, 100, 300, 200]
        assert pair.object_box.tolist() == [0, 0, 1000, 500]
    assert q2.parse_pairs(text, 1000, 500)[0].verb == "ride"


def test_profile_errors_are_one_line() -> None:
    with pytest.raises(HoidataError, match="unknown profile"):
        get_profile("llava")
    with pytest.raises(HoidataError, match="pixel budget"):
        get_profile("qwen3-vl", min_pixels=10_000, max_pixels=100)
