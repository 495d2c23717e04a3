"""Rewards over 100,000 synthetic completions, against a per-pair Python loop.

Completions answer detection questions (1–6 ground-truth pairs each, Qwen2.5-VL frame) the way a
policy does during RL: exact, jittered, with wrong verbs, missing or extra pairs, unreadable, and
some after a zoom-in call. The baseline is what reward scripts do, done carefully: per completion a
regex for the answer block, ``json.loads``, each box converted to canonical pixels in Python, and
greedy matching with a Python IoU — the same definition, so the two must agree exactly. hoidata
scans well-formed answers with a compiled scanner (orjson reads the rest) and matches pairs in one
compiled pass; its first call in a new checkout compiles them (seconds, then cached on disk), so
every timing here is taken after a first call.
Goals on 2 cores: accuracy ≥ 10x the baseline, and the full hierarchical reward (accuracy, format,
tool use, spatial) ≥ 20,000 completions/s.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import numpy as np
import pyarrow as pa
from timing import timed, timed_interleaved

from hoidata.profiles import get_profile
from hoidata.profiles.answers import parse_answers
from hoidata.rewards import Targets, score
from hoidata.rewards.accuracy import pair_f1
from hoidata.rewards.reference import box_iou
from hoidata.schemas.boxes import smart_resize

N = 100_000
VERBS = ["ride", "hold", "sit_on", "carry", "kick", "eat", "look_at", "throw"]
OBJECTS = ["bicycle", "sports_ball", "cup", "horse", "chair", "pizza"]
PROFILE = get_profile("qwen2.5-vl")
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)


def synthesize(n: int, seed: int = 0) -> tuple[list[Any], Targets]:
    rng = np.random.default_rng(seed)
    w, h = rng.integers(320, 1280, n), rng.integers(240, 960, n)
    counts = rng.integers(1, 7, n)
    owner = np.repeat(np.arange(n), counts)
    m = len(owner)

    def boxes() -> np.ndarray:
        x1, y1 = rng.random(m) * 0.6 * w[owner], rng.random(m) * 0.6 * h[owner]
        bw, bh = (0.1 + 0.3 * rng.random(m)) * w[owner], (0.1 + 0.3 * rng.random(m)) * h[owner]
        return np.stack([x1, y1, x1 + bw, y1 + bh], axis=1)

    person, obj = boxes(), boxes()
    has = rng.random(m) < 0.9
    verb = np.array(VERBS)[rng.integers(0, len(VERBS), m)]
    label = np.where(has, np.array(OBJECTS)[rng.integers(0, len(OBJECTS), m)], "")
    gt = Targets(
        offsets=np.concatenate([[0], np.cumsum(counts)]),
        person=person,
        object=np.where(has[:, None], obj, np.nan),
        verb=pa.array(verb.tolist(), pa.string()),
        object_label=pa.array([x or None for x in label.tolist()], pa.string()),
        task=np.full(n, "detection"),
        width=w.astype(np.float64),
        height=h.astype(np.float64),
    )
    # predictions: jitter boxes, swap some verbs, drop some pairs, add some
    kind = rng.integers(0, 5, n)  # 0 exact, 1 jittered, 2 wrong verbs, 3 dropped/added, 4 unreadable
    jitter = np.where((kind[owner] == 1)[:, None], rng.normal(0, 0.05, (m, 4)) * w[owner, None], 0.0)
    p_person, p_obj = person + jitter, obj + jitter
    p_verb = np.where((kind[owner] == 2) & (rng.random(m) < 0.5), "juggle", verb)
    keep = ~((kind[owner] == 3) & (rng.random(m) < 0.3))
    rw, rh = PROFILE.resized(w[owner], h[owner])
    clip = np.stack([rw, rh, rw, rh], axis=1)
    mp = np.clip(PROFILE.to_model(p_person, w[owner], h[owner]), 0, clip)
    mo = np.clip(PROFILE.to_model(p_obj, w[owner], h[owner]), 0, clip)
    entries = PROFILE.pair_texts(
        mp, mo, has, pa.array(np.char.replace(p_verb, "_", " ")), pa.array(np.char.replace(label, "_", " "))
    ).to_pylist()
    completions: list[Any] = []
    for i in range(n):
        s, e = gt.offsets[i], gt.offsets[i + 1]
        chosen = [entries[j] for j in range(s, e) if keep[j]]
        if kind[i] == 3:
            chosen += chosen[:1]
        body = "[" + ", ".join(chosen) + "]" if kind[i] != 4 else "I think someone is riding something."
        think = "The person on the left is below the person's head, overlapping it."
        text = f"<think>{think}</think><answer>{body}</answer>"
        if i % 4 == 0:  # a zoom-in first
            box = [int(v) for v in mp[s]]
            call = {"type": "function", "function": {"name": "zoom_in", "arguments": {"bbox_2d": box}}}
            completions.append(
                [
                    {
                        "role": "assistant",
                        "content": "<think>Let me look closer.</think>",
                        "tool_calls": [call],
                    },
                    {"role": "tool", "content": [{"type": "image"}, {"type": "text", "text": "Zoomed view"}]},
                    {"role": "assistant", "content": text},
                ]
            )
        else:
            completions.append(text)
    return completions, gt


def final_text(c: Any) -> str:
    return c if isinstance(c, str) else c[-1]["content"]


def baseline(texts: list[str], gt: Targets, verbs: list[str], labels: list[str | None]) -> np.ndarray:
    """Per completion, per pair: the obvious reward script (ground-truth names as Python lists)."""
    out = np.zeros(len(texts))
    for i, text in enumerate(texts):
        w, h = float(gt.width[i]), float(gt.height[i])
        rh, rw = smart_resize(int(h), int(w), PROFILE.factor, PROFILE.min_pixels, PROFILE.max_pixels)
        sx, sy = w / rw, h / rh
        found = _ANSWER.findall(text)
        try:
            entries = json.loads(found[-1] if found else text)
        except json.JSONDecodeError:
            entries = []
        preds = []
        for e in entries if isinstance(entries, list) else []:
            p = e.get("person_bbox_2d") if isinstance(e, dict) else None
            if not isinstance(p, list) or len(p) != 4:
                continue
            o = e.get("object_bbox_2d")
            preds.append(
                (
                    [p[0] * sx, p[1] * sy, p[2] * sx, p[3] * sy],
                    None if o is None else [o[0] * sx, o[1] * sy, o[2] * sx, o[3] * sy],
                    e.get("verb", "").replace(" ", "_"),
                    (e.get("object") or "").replace(" ", "_") or None,
                )
            )
        s, e_ = gt.offsets[i], gt.offsets[i + 1]
        taken = [False] * (e_ - s)
        tp = 0
        for pp, po, pv, pl in preds:
            best, best_score = -1, -1.0
            for j in range(s, e_):
                go = None if np.isnan(gt.object[j, 0]) else gt.object[j]
                if taken[j - s] or (po is None) != (go is None) or pv != verbs[j] or pl != labels[j]:
                    continue
                sc = box_iou(pp, gt.person[j])
                if go is not None:
                    sc = min(sc, box_iou(po, go))
                if sc >= 0.5 and sc > best_score:
                    best, best_score = j, sc
            if best >= 0:
                taken[best - s] = True
                tp += 1
        total = len(preds) + (e_ - s)
        out[i] = 2 * tp / total if total else 1.0
    return out


def baseline_matching(preds: list[list[tuple]], gts: list[list[tuple]]) -> np.ndarray:
    """The per-pair loop alone, on answers already parsed into canonical Python tuples."""
    out = np.zeros(len(preds))
    for i, (pp, gg) in enumerate(zip(preds, gts, strict=True)):
        taken = [False] * len(gg)
        tp = 0
        for person, obj, verb, label in pp:
            best, best_score = -1, -1.0
            for j, (g_person, g_obj, g_verb, g_label) in enumerate(gg):
                if taken[j] or (obj is None) != (g_obj is None) or verb != g_verb or label != g_label:
                    continue
                sc = box_iou(person, g_person)
                if g_obj is not None:
                    sc = min(sc, box_iou(obj, g_obj))
                if sc >= 0.5 and sc > best_score:
                    best, best_score = j, sc
            if best >= 0:
                taken[best] = True
                tp += 1
        total = len(pp) + len(gg)
        out[i] = 2 * tp / total if total else 1.0
    return out


def as_tuples(
    offsets: np.ndarray, person: np.ndarray, obj: np.ndarray, verb: list, label: list
) -> list[list[tuple]]:
    p, o = person.tolist(), [None if np.isnan(b[0]) else b.tolist() for b in obj]
    return [[(p[j], o[j], verb[j], label[j]) for j in range(s, e)] for s, e in itertools.pairwise(offsets)]


def main() -> None:
    completions, gt = synthesize(N)
    texts = [final_text(c) for c in completions]
    # ground truth as each side holds it, made before any timing: Python lists for the loop
    verbs, labels = gt.verb.to_pylist(), gt.object_label.to_pylist()
    ours = pair_f1(parse_answers(PROFILE, texts, gt.width, gt.height), gt)
    base = baseline(texts, gt, verbs, labels)
    np.testing.assert_allclose(ours, base, err_msg="hoidata and the baseline disagree")
    t_base, t_acc = timed_interleaved(
        [
            lambda: baseline(texts, gt, verbs, labels),
            lambda: pair_f1(parse_answers(PROFILE, texts, gt.width, gt.height), gt),
        ]
    )
    t_all = timed(lambda: score(completions, gt, PROFILE), repeats=3)
    parsed = parse_answers(PROFILE, texts, gt.width, gt.height)
    preds = as_tuples(
        parsed.offsets, parsed.person, parsed.object, parsed.verb.to_pylist(), parsed.object_label.to_pylist()
    )
    truth = as_tuples(gt.offsets, gt.person, gt.object, verbs, labels)
    np.testing.assert_allclose(baseline_matching(preds, truth), ours)
    t_base_match = timed(lambda: baseline_matching(preds, truth), repeats=3)
    t_match = timed(lambda: pair_f1(parsed, gt), repeats=3)
    means = score(completions, gt, PROFILE).means()
    print(f"{N:,} synthetic detection completions (qwen2.5-vl), {len(gt.verb):,} ground-truth pairs")
    print("  mean rewards: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))
    print(f"  baseline accuracy (per-pair loop): {t_base * 1000:8.1f} ms  ({N / t_base:9,.0f} completions/s)")
    print(f"  hoidata accuracy (batched):        {t_acc * 1000:8.1f} ms  ({N / t_acc:9,.0f} completions/s)")
    print(f"  hoidata hierarchical reward:       {t_all * 1000:8.1f} ms  ({N / t_all:9,.0f} completions/s)")
    print(
        f"  matching only, parsed answers: loop {t_base_match * 1000:.1f} ms, hoidata {t_match * 1000:.1f} ms"
    )
    print(f"  speed-up, text to accuracy: {t_base / t_acc:.1f}x   matching: {t_base_match / t_match:.1f}x")
    print("  (goals: ≥ 10x the per-pair loop, and ≥ 20,000 completions/s for the whole reward)")


if __name__ == "__main__":
    main()
