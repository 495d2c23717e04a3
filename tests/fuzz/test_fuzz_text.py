"""Every answer parser and the reward over hostile text: a wrong answer, never an exception."""

from __future__ import annotations

import numpy as np
import pytest
from hostile import COMPLETION, HUGE
from hypothesis import given
from hypothesis import strategies as st

from hoidata.eval.hoiqa import grid_boxes, noun_correct
from hoidata.profiles import PROFILES, get_profile
from hoidata.profiles.answers import parse_answers, parse_verbs
from hoidata.rewards import Targets, score
from hoidata.rewards.completions import parse_tool_call, rollout
from hoidata.sft.qa import read_boxes

PAIR = {
    "person_bbox": [10.0, 10.0, 60.0, 90.0],
    "object_bbox": [40.0, 40.0, 80.0, 80.0],
    "verb": "hold",
    "verb_id": 36,
    "object": "cup",
    "object_id": 41,
    "hoi_id": 297,
}
TASKS = ["detection", "referring", "grounding", "cof", "spatial"]


def _truth(profile: str, task: str) -> str:
    p = get_profile(profile)
    box = lambda b: p.box_text(p.to_model([b], 100, 100)[0])  # noqa: E731
    if task in ("referring", "spatial", "cof"):
        return "<think>ok</think><answer>hold</answer>"
    if p.style.value == "json":
        verb = ', "verb": "hold", "object": "cup"' if task == "detection" else ""
        entry = f'{{"person_bbox_2d": {box(PAIR["person_bbox"])}{verb}, "object_bbox_2d": {box(PAIR["object_bbox"])}}}'
        return f"<think>ok</think><answer>[{entry}]</answer>"
    middle = " hold <|object_ref_start|>cup<|object_ref_end|>" if task == "detection" else ""
    person = f"<|object_ref_start|>person<|object_ref_end|>{box(PAIR['person_bbox'])}"
    return f"<think>ok</think><answer>{person}{middle}{box(PAIR['object_bbox'])}</answer>"


@pytest.mark.parametrize("profile", list(PROFILES))
@given(hostile=COMPLETION, task=st.sampled_from(TASKS))
def test_score_survives_any_text_and_spares_its_neighbours(profile: str, hostile: str, task: str) -> None:
    truth = _truth(profile, task)
    targets = Targets.from_rows([[PAIR]] * 3, [task] * 3, [100] * 3, [100] * 3)
    s = score([truth, hostile, truth], targets, get_profile(profile))
    for part in (s.accuracy, s.format, s.tool, s.spatial, s.total):
        assert np.isfinite(part).all()
    assert 0.0 <= s.accuracy[1] <= 1.0
    alone = score([truth], Targets.from_rows([[PAIR]], [task], [100], [100]), get_profile(profile))
    assert s.accuracy[0] == s.accuracy[2] == alone.accuracy[0] == 1.0
    assert s.total[0] == s.total[2] == alone.total[0]


@pytest.mark.parametrize("profile", list(PROFILES))
@given(texts=st.lists(COMPLETION, max_size=5))
def test_answer_parsers_read_any_text(profile: str, texts: list[str]) -> None:
    p = get_profile(profile)
    a = parse_answers(p, texts, 640, 480)
    assert len(a.offsets) == len(texts) + 1 and np.isfinite(a.person).all()
    offsets, verbs = parse_verbs(texts)
    assert len(offsets) == len(texts) + 1 and all(isinstance(v, str) for v in verbs)
    for t in texts:
        assert np.isfinite(p.parse_boxes(t, 640, 480)).all()
        p.parse_pairs(t, 640, 480)
        for fmt in ("profile", "grid"):
            boxes = read_boxes(t, fmt, p, 640, 480)
            assert boxes.ndim == 2 and boxes.shape[1] == 4
        assert grid_boxes(t, 640, 480).shape[1] == 4
        noun_correct(t, "left hand"), noun_correct(t, "cup")
        rollout(t), rollout([{"role": "assistant", "content": t}]), parse_tool_call(t)


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "<answer>\ud83d</answer>", "\x00" * 10])
def test_the_surrogate_case_scores_as_wrong(text: str) -> None:
    """A lone surrogate (a JSON "\\ud800" escape from a server) crashed the whole batch once."""
    p = get_profile("qwen2.5-vl")
    targets = Targets.from_rows([[PAIR]] * 3, ["detection"] * 3, [100] * 3, [100] * 3)
    truth = _truth("qwen2.5-vl", "detection")
    s = score([truth, text, truth], targets, p)
    assert list(s.accuracy) == [1.0, 0.0, 1.0] and s.total[1] == 0.0


@pytest.mark.parametrize("huge", HUGE, ids=["1MB", "nesting", "50k-boxes", "50k-open-entries"])
def test_megabyte_answers(huge: str) -> None:
    p = get_profile("qwen2.5-vl")
    targets = Targets.from_rows([[PAIR]], ["detection"], [100], [100])
    assert 0.0 <= score([huge], targets, p).accuracy[0] <= 1.0
