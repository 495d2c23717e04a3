"""The reward module: exact accuracy in every profile's frame, a strict format gate, tool and
spatial terms that pay for useful behaviour only, and the reward hacks they must resist."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hoidata.profiles import PROFILES, Profile, get_profile
from hoidata.profiles.answers import parse_answers
from hoidata.rewards import RewardConfig, Targets, reward_funcs, score
from hoidata.rewards.accuracy import pair_f1
from hoidata.rewards.greedy import PairArrays, greedy_matches
from hoidata.rewards.reference import pair_f1_loop, verb_f1_loop
from hoidata.rewards.targets import take
from hoidata.sft.schema import SFT_SCHEMA

NAMES = sorted(PROFILES)
VERBS = ["ride", "hold", "sit_on", "carry", "kick"]
OBJECTS = ["bicycle", "sports_ball", "cup"]
W, H = 640, 480
BIKE = {"person_bbox": [100.0, 50.0, 300.0, 400.0], "object_bbox": [120.0, 250.0, 420.0, 470.0]}
RIDE = {**BIKE, "verb": "ride", "object": "bicycle"}
HOLD = {**BIKE, "verb": "hold", "object": "bicycle"}
WAVE = {"person_bbox": [400.0, 40.0, 600.0, 460.0], "object_bbox": None, "verb": "wave", "object": None}


@st.composite
def scenes(draw: st.DrawFn) -> tuple[list[dict[str, Any]], int, int]:
    """Ground-truth pairs whose boxes are at least 10% of the image side (quantisation cannot
    take a box below IoU 0.5 of itself; tiny boxes in a 56-pixel frame can)."""
    w, h = draw(st.integers(64, 4000)), draw(st.integers(64, 4000))

    def box() -> list[float]:
        x1 = draw(st.floats(0, 0.9 * w))
        y1 = draw(st.floats(0, 0.9 * h))
        x2 = draw(st.floats(min(x1 + 0.1 * w, w), w))
        y2 = draw(st.floats(min(y1 + 0.1 * h, h), h))
        return [x1, y1, x2, y2]

    pairs = []
    for _ in range(draw(st.integers(1, 5))):
        has_object = draw(st.booleans())
        pairs.append(
            {
                "person_bbox": box(),
                "object_bbox": box() if has_object else None,
                "verb": draw(st.sampled_from(VERBS)),
                "object": draw(st.sampled_from(OBJECTS)) if has_object else None,
            }
        )
    return pairs, w, h


def answer_entries(
    profile: Profile, pairs: list[dict[str, Any]], w: float, h: float, labels: bool = True
) -> list[str]:
    """The answer entries a perfect model writes, through the profile's own formatter."""
    person = profile.to_model(np.array([p["person_bbox"] for p in pairs]), w, h)
    obj_boxes = [p["object_bbox"] or p["person_bbox"] for p in pairs]
    obj = profile.to_model(np.array(obj_boxes), w, h)
    has = np.array([p["object_bbox"] is not None for p in pairs])
    verbs = pa.array([p["verb"].replace("_", " ") for p in pairs]) if labels else None
    objects = pa.array([(p["object"] or "").replace("_", " ") for p in pairs]) if labels else None
    return profile.pair_texts(person, obj, has, verbs, objects).to_pylist()


def answer(profile: Profile, entries: list[str]) -> str:
    if not entries:
        return "[]" if profile.style == "json" else "none"
    return "[" + ", ".join(entries) + "]" if profile.style == "json" else "\n".join(entries)


def completion(body: str, think: str = "The person's hands are on the handlebar.") -> str:
    return f"<think>{think}</think><answer>{body}</answer>"


def targets(pairs_per: list[list[dict]], task: str = "detection", w: float = W, h: float = H) -> Targets:
    return Targets.from_rows(pairs_per, task, w, h)


# ---- accuracy: properties -------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@given(scene=scenes())
@settings(max_examples=40, deadline=None)
def test_ground_truth_answer_scores_one_in_every_frame(name: str, scene: tuple) -> None:
    pairs, w, h = scene
    p = get_profile(name)
    detection = completion(answer(p, answer_entries(p, pairs, w, h)))
    grounding = completion(answer(p, answer_entries(p, pairs, w, h, labels=False)))
    gt = Targets.from_rows([pairs, pairs], ["detection", "grounding"], w, h)
    s = score([detection, grounding], gt, p)
    assert s.accuracy.tolist() == [1.0, 1.0]
    assert s.format.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("name", NAMES)
@given(scene=scenes(), wrong=st.integers(1, 4))
@settings(max_examples=30, deadline=None)
def test_accuracy_is_zero_when_empty_and_falls_with_each_wrong_pair(
    name: str, scene: tuple, wrong: int
) -> None:
    pairs, w, h = scene
    p = get_profile(name)
    entries = answer_entries(p, pairs, w, h)
    # wrong pairs: the same boxes with a verb no ground-truth pair has
    bad = answer_entries(p, [{**pq, "verb": "juggle"} for pq in pairs], w, h)
    texts = [completion(answer(p, entries + (bad * k)[:k])) for k in range(wrong + 1)]
    texts.append(completion(answer(p, [])))
    gt = targets([pairs] * len(texts), w=w, h=h)
    acc = score(texts, gt, p).accuracy
    assert acc[-1] == 0.0
    assert acc[0] == 1.0
    assert np.all(np.diff(acc[:-1]) < 0)  # every added wrong pair costs


@given(scene=scenes(), seed=st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
def test_vectorised_matching_equals_the_per_pair_loop(scene: tuple, seed: int) -> None:
    """Jittered, shuffled, duplicated and relabelled answers: same F1 as the obvious loop."""
    pairs, w, h = scene
    p = get_profile("qwen2.5-vl")
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(6):
        noisy = []
        for pq in pairs:
            for _ in range(rng.integers(0, 3)):  # missing or duplicated
                jitter = lambda b: None if b is None else (np.array(b) + rng.normal(0, 0.08 * w, 4)).tolist()  # noqa: E731
                noisy.append(
                    {
                        **pq,
                        "person_bbox": np.clip(jitter(pq["person_bbox"]), 0, [w, h, w, h]).tolist(),
                        "object_bbox": None
                        if pq["object_bbox"] is None
                        else np.clip(jitter(pq["object_bbox"]), 0, [w, h, w, h]).tolist(),
                        "verb": pq["verb"] if rng.random() < 0.8 else str(rng.choice(VERBS)),
                    }
                )
        rng.shuffle(noisy)
        texts.append(completion(answer(p, answer_entries(p, noisy, w, h) if noisy else [])))
    gt = targets([pairs] * len(texts), w=w, h=h)
    for labels in (True, False):
        fast = pair_f1(parse_answers(p, texts, w, h), gt, labels=labels)
        slow = [pair_f1_loop(p, t, pairs, w, h, labels=labels) for t in texts]
        np.testing.assert_allclose(fast, slow)


@pytest.mark.parametrize("labels", [True, False])
def test_array_matching_equals_the_compiled_pass(labels: bool) -> None:
    """Small batches are matched with array passes, big ones by the compiled pass: the same pairs.
    Boxes on a coarse grid, so that overlaps tie; missing objects, unwritten labels, long answers."""
    rng = np.random.default_rng(3)
    n = 2000
    pred_counts, gt_counts = rng.integers(0, 9, n), rng.integers(0, 6, n)

    def boxes(m: int) -> np.ndarray:
        xy = rng.integers(0, 3, (m, 2)) * 10.0
        b = np.concatenate([xy, xy + rng.integers(3, 5, (m, 2)) * 10.0], axis=1)
        b[rng.random(m) < 0.15] = np.nan  # as an object box: no object
        return b

    def side(counts: np.ndarray) -> PairArrays:
        m = int(counts.sum())
        person = np.nan_to_num(boxes(m), nan=5.0)
        codes = np.where(rng.random((m, 2)) < 0.05, -1, rng.integers(0, 2, (m, 2)))
        return PairArrays(np.concatenate([[0], np.cumsum(counts)]), person, boxes(m), codes)

    pred, gt = side(pred_counts), side(gt_counts)
    found = {
        compiled: greedy_matches(pred, gt, labels=labels, iou_threshold=0.5, max_ranked=6, compiled=compiled)
        for compiled in (False, True)
    }
    assert found[False].sum() > n // 20
    np.testing.assert_array_equal(found[False], found[True])


def test_verb_answers_score_the_f1_of_distinct_verbs() -> None:
    p = get_profile("qwen3-vl")
    texts = ["ride, hold", "Ride", "ride and hold and ride", "kick", "ride, hold, kick, carry, wave, sit on"]
    gt = targets([[RIDE, HOLD]] * len(texts), task="referring")
    acc = score([completion(t) for t in texts], gt, p).accuracy
    assert acc.tolist() == pytest.approx([1.0, 2 / 3, 1.0, 0.0, 0.5])
    assert acc.tolist() == pytest.approx([verb_f1_loop(completion(t), [RIDE, HOLD]) for t in texts])


def test_targets_from_arrow_equal_targets_from_rows() -> None:
    rows = [[RIDE, WAVE], [], [HOLD]]
    names = {f.name for f in SFT_SCHEMA}
    table = pa.table(
        {
            "pairs": pa.array(
                [[{k: v for k, v in pq.items()} for pq in r] for r in rows], SFT_SCHEMA.field("pairs").type
            ),
            "task": ["detection", "grounding", "referring"],
            "width": pa.array([W, W, 100], pa.int32()),
            "height": pa.array([H, H, 80], pa.int32()),
        }
    )
    assert {"pairs", "task", "width", "height"} <= names
    a = Targets.from_arrow(table)
    b = Targets.from_rows(rows, ["detection", "grounding", "referring"], [W, W, 100], [H, H, 80])
    for field in ("offsets", "person", "object", "width", "height"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.verb == b.verb and a.object_label == b.object_label and a.task.tolist() == b.task.tolist()
    sub = take(a, np.array([2, 0]))
    assert sub.verb.to_pylist() == ["hold", "ride", "wave"] and sub.offsets.tolist() == [0, 1, 3]


# ---- format ---------------------------------------------------------------------------------------
def _fmt(*completions: Any, task: str = "referring", **cfg: Any) -> list[float]:
    gt = targets([[RIDE]] * len(completions), task=task)
    return score(list(completions), gt, get_profile("qwen2.5-vl"), RewardConfig(**cfg)).format.tolist()


def test_format_accepts_the_think_answer_structure_and_nothing_else() -> None:
    call = '<tool_call>\n{"name": "zoom_in", "arguments": {"bbox_2d": [1, 2, 30, 40]}}\n</tool_call>'
    tool_turns = [
        {"role": "assistant", "content": f"<think>Zoom on the hands.</think>{call}"},
        {"role": "tool", "content": [{"type": "image"}, {"type": "text", "text": "Zoomed view"}]},
        {"role": "assistant", "content": "<think>He pedals.</think>\n<answer>ride</answer>"},
    ]
    good = [completion("ride"), tool_turns]
    assert _fmt(*good) == [1.0, 1.0]
    bad = [
        "ride",  # no tags
        "<answer>ride</answer>",  # no reasoning
        "<think></think><answer>ride</answer>",  # empty reasoning
        "<think>x</think><answer></answer>",  # empty answer: format without content
        "<think>x</think><answer>ride</answer> and more",  # text after the answer
        "<think>x</think><think>y</think><answer>ride</answer>",  # two thoughts in one turn
        "<think>x<answer>ride</answer>",  # unbalanced
        "<think>x</think><answer>ride</answer><answer>hold</answer>",  # two answers
        f"<think>x</think>{call}",  # ends on a call, no answer
        "<think>x</think><answer>" + "ride, " * 1000 + "</answer>",  # over-long
        "<think>x</think><tool_call>{broken</tool_call><answer>ride</answer>",
        [],
    ]
    assert _fmt(*bad) == [0.0] * len(bad)
    assert _fmt(completion("ride"), "<answer>ride</answer>", require_think=False) == [1.0, 1.0]


def test_format_needs_an_answer_the_task_can_read() -> None:
    assert _fmt(completion("I am not sure."), completion("[]"), task="detection") == [0.0, 1.0]


# ---- reward hacking ----------------------------------------------------------------------------------
def test_reward_hacks_do_not_pay() -> None:
    p = get_profile("qwen2.5-vl")
    honest = completion(answer(p, answer_entries(p, [RIDE], W, H)))
    every_verb = completion(
        answer(p, answer_entries(p, [{**RIDE, "verb": v} for v in VERBS * 3 + ["ride"]], W, H))
    )
    giant = completion(
        answer(
            p, answer_entries(p, [{**RIDE, "person_bbox": [0, 0, W, H], "object_bbox": [0, 0, W, H]}], W, H)
        )
    )
    empty_format = "<think>.</think><answer>[]</answer>"
    gt = targets([[RIDE]] * 4)
    s = score([honest, every_verb, giant, empty_format], gt, p)
    assert s.total[0] == max(s.total)
    assert s.accuracy[1] < 0.2 and s.accuracy[2] == 0.0 and s.accuracy[3] == 0.0
    assert s.total[2] <= RewardConfig().format and s.total[3] <= RewardConfig().format
    # every verb in a referring answer
    texts = [completion("ride"), completion(", ".join([*VERBS, "wave", "jump", "eat", "look at"]))]
    s = score(texts, targets([[RIDE]] * 2, task="referring"), p)
    assert s.accuracy[1] < 0.25 < s.accuracy[0]


def _zoom(box: list[float], result: str = "Zoomed view") -> list[dict[str, Any]]:
    call = {"type": "function", "function": {"name": "zoom_in", "arguments": {"bbox_2d": box}}}
    return [
        {"role": "assistant", "content": "<think>Look closer.</think>", "tool_calls": [call]},
        {"role": "tool", "name": "zoom_in", "content": [{"type": "image"}, {"type": "text", "text": result}]},
    ]


def test_tool_reward_pays_for_useful_calls_not_many() -> None:
    p = get_profile("qwen3-vl")  # 0-1000 frame: [156, 104, 656, 979] covers the person and the bike
    final = {"role": "assistant", "content": completion("ride")}
    near = [156, 104, 656, 979]
    one = [*_zoom(near), final]
    spam = [m for k in range(12) for m in _zoom([150 + k, 100, 650, 970])] + [final]
    repeated = _zoom(near) + _zoom(near) + [final]
    whole = [*_zoom([0, 0, 1000, 1000]), final]
    elsewhere = [*_zoom([900, 0, 1000, 50]), final]
    failed = [*_zoom(near, '{"error": "zoom_in: bbox_2d must be [x1, y1, x2, y2]"}'), final]
    wrong_answer = [*_zoom(near), {"role": "assistant", "content": completion("kick")}]
    rolls = [one, spam, repeated, whole, elsewhere, failed, wrong_answer]
    s = score(rolls, targets([[RIDE]] * len(rolls), task="referring"), p)
    assert s.tool.tolist() == pytest.approx([1.0, 4 / 12, 0.5, 0.0, 0.0, 0.0, 1.0])
    assert s.format.tolist() == [1.0] * len(rolls)
    # gated: a wrong answer earns nothing for its tool use
    assert s.total[-1] == RewardConfig().format
    assert s.total[0] > s.total[1] > s.total[4]


def test_spatial_reward_checks_claims_against_the_boxes() -> None:
    p = get_profile("qwen2.5-vl")
    # the bicycle's centre is right of and below the person's, overlapping it
    texts = [
        "The bicycle is below the person, overlapping it.",
        "The bicycle is left of the person and far from them.",
        "The bicycle is left of the person, right of the person, above the person and below the person.",
        "A bicycle.",
    ]
    s = score([completion("ride", t) for t in texts], targets([[RIDE]] * 4, task="spatial"), p)
    assert s.spatial.tolist() == pytest.approx([1.0, 0.0, 0.5, 0.0])  # two of four directions hold
    # no reward for relation talk in a wrong answer
    wrong = score([completion("kick", texts[0])], targets([[RIDE]], task="spatial"), p)
    assert wrong.spatial[0] == 1.0 and wrong.total[0] == RewardConfig().format


# ---- TRL ------------------------------------------------------------------------------------------
def test_reward_funcs_follow_trl_signature_and_sum_to_the_total() -> None:
    p = get_profile("qwen2.5-vl")
    funcs = reward_funcs(p, RewardConfig(tool=2.0))
    assert [f.__name__ for f in funcs] == [
        "accuracy_reward",
        "format_reward",
        "tool_reward",
        "spatial_reward",
    ]
    completions = [
        [*_zoom([30, 30, 300, 300]), {"role": "assistant", "content": completion("ride")}],
        [{"role": "assistant", "content": completion("kick")}],
    ]
    kwargs = {"pairs": [[RIDE], [RIDE]], "task": ["referring"] * 2, "width": [W, W], "height": [H, H]}
    values = np.array(
        [f(prompts=[[], []], completions=completions, completion_ids=None, **kwargs) for f in funcs]
    )
    expected = score(completions, targets([[RIDE]] * 2, task="referring"), p, RewardConfig(tool=2.0)).total
    np.testing.assert_allclose(values.sum(axis=0), expected)
    assert values[2].tolist() == [2.0, 0.0]


def test_plain_string_completions_with_tool_call_text_are_read() -> None:
    call = json.dumps({"name": "zoom_in", "arguments": {"bbox_2d": [156, 104, 656, 979]}})
    text = f"<think>Zoom.</think><tool_call>\n{call}\n</tool_call>"
    rolls = [[{"role": "assistant", "content": text}, {"role": "assistant", "content": completion("ride")}]]
    s = score(rolls, targets([[RIDE]], task="referring"), get_profile("qwen3-vl"))
    assert s.tool[0] == 1.0 and s.format[0] == 1.0


def test_reasoning_lifted_out_by_a_response_parser_still_counts() -> None:
    """Qwen3's response schema moves <think> into ``reasoning_content``; format and spatial see it."""
    turn = {
        "role": "assistant",
        "reasoning_content": "The bicycle is below the person.",
        "content": "<answer>ride</answer>",
    }
    empty = {"role": "assistant", "reasoning_content": "", "content": "<answer>ride</answer>"}
    s = score([[turn], [empty]], targets([[RIDE]] * 2, task="spatial"), get_profile("qwen3-vl"))
    assert s.format.tolist() == [1.0, 0.0]
    assert s.spatial.tolist() == [1.0, 0.0]
