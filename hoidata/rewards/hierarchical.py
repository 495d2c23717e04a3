"""The hierarchical reward: ``R = R_acc + R_format + 1[R_acc > 0]·(R_tool + R_spatial)``, weighted.

Tool and spatial terms only count once the answer is at least partly right, so a policy cannot
farm them with tool spam or relation talk while answering wrongly. The same :func:`score` serves
generation (verification and rejection sampling), filtering (chosen/rejected pairs) and GRPO
(:func:`reward_funcs`), so a trace is judged the same way wherever it is judged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from hoidata.perf import paused_gc
from hoidata.profiles import Profile, get_profile
from hoidata.profiles.answers import answer_body, parse_answers, parse_verbs
from hoidata.rewards.accuracy import IOU_THRESHOLD, pair_f1, verb_f1
from hoidata.rewards.completions import rollouts
from hoidata.rewards.format import format_ok
from hoidata.rewards.spatial import spatial
from hoidata.rewards.targets import DETECTION, GROUNDING, VERB_TASKS, Targets, take
from hoidata.rewards.tool_use import tool_use

COMPONENTS = ("accuracy", "format", "tool", "spatial")
EMPTY_ANSWERS = frozenset({"[]", "none", "nothing"})  # how an answer says "no interaction here"


@dataclass(frozen=True)
class RewardConfig:
    """Weights and limits of the hierarchical reward (defaults favour accuracy)."""

    accuracy: float = 1.0
    format: float = 0.5
    tool: float = 0.5
    spatial: float = 0.5
    iou_threshold: float = IOU_THRESHOLD
    max_answer_chars: int = 4000
    require_think: bool = True
    call_budget: int = 4  # calls beyond this many dilute the tool reward


@dataclass(frozen=True)
class Scores:
    """Unweighted components and the weighted, gated total, one value per completion."""

    accuracy: np.ndarray
    format: np.ndarray
    tool: np.ndarray
    spatial: np.ndarray
    total: np.ndarray

    def means(self) -> dict[str, float]:
        return {
            f.name: float(np.mean(getattr(self, f.name))) if len(self.total) else 0.0 for f in fields(self)
        }


def score(
    completions: Sequence[Any], targets: Targets, profile: Profile, config: RewardConfig | None = None
) -> Scores:
    """Score completions (strings or message lists) against their ground truth."""
    cfg = config or RewardConfig()
    n = len(targets)
    if len(completions) != n:
        raise ValueError(f"{len(completions)} completions for {n} targets")
    with paused_gc():
        return _score(completions, targets, profile, cfg)


def _score(completions: Sequence[Any], targets: Targets, profile: Profile, cfg: RewardConfig) -> Scores:
    n = len(targets)
    rolls = rollouts(completions)
    finals = [r.final for r in rolls]
    accuracy = np.zeros(n)
    readable = np.zeros(n, bool)
    verb_task = np.isin(targets.task, VERB_TASKS)
    grounding = targets.task == GROUNDING
    for idx, labels in ((np.flatnonzero(~verb_task & ~grounding), True), (np.flatnonzero(grounding), False)):
        if not len(idx):
            continue
        sub = take(targets, idx)
        texts = [finals[i] for i in idx]
        answers = parse_answers(profile, texts, sub.width, sub.height)
        accuracy[idx] = pair_f1(answers, sub, labels=labels, iou_threshold=cfg.iou_threshold)
        said_none = np.array([answer_body(t).strip().lower() in EMPTY_ANSWERS for t in texts], bool)
        readable[idx] = (answers.counts > 0) | said_none
    idx = np.flatnonzero(verb_task)
    if len(idx):
        offsets, verbs = parse_verbs([finals[i] for i in idx])
        accuracy[idx] = verb_f1(offsets, verbs, take(targets, idx))
        readable[idx] = np.diff(offsets) > 0
    fmt = format_ok(rolls, max_answer_chars=cfg.max_answer_chars, require_think=cfg.require_think) * readable
    tool = tool_use(rolls, targets, profile, call_budget=cfg.call_budget)
    spat = spatial(rolls, targets)
    gate = accuracy > 0
    total = cfg.accuracy * accuracy + cfg.format * fmt + gate * (cfg.tool * tool + cfg.spatial * spat)
    return Scores(accuracy, fmt, tool, spat, total)


def reward_funcs(
    profile: Profile | str, config: RewardConfig | None = None
) -> list[Callable[..., list[float]]]:
    """TRL ``reward_funcs``: one function per component, each already weighted (and gated), so
    TRL logs every component and their sum is the hierarchical reward (keep ``reward_weights`` at 1).

    The dataset must carry ``pairs``, ``width`` and ``height`` (and ``task``, else detection);
    the batch is scored once and shared by the four functions.
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    cfg = config or RewardConfig()
    last: dict[str, Any] = {}

    def scores(completions: list, kwargs: dict[str, Any]) -> Scores:
        if last.get("completions") is not completions:
            targets = Targets.from_rows(
                kwargs["pairs"], kwargs.get("task", DETECTION), kwargs["width"], kwargs["height"]
            )
            last.update(completions=completions, scores=score(completions, targets, prof, cfg))
        return last["scores"]

    def make(component: str) -> Callable[..., list[float]]:
        weight = getattr(cfg, component)

        def reward(prompts: list, completions: list, **kwargs: Any) -> list[float]:
            s = scores(completions, kwargs)
            value = getattr(s, component) * weight
            if component in ("tool", "spatial"):
                value = value * (s.accuracy > 0)
            return value.tolist()

        reward.__name__ = f"{component}_reward"
        reward.__qualname__ = reward.__name__
        return reward

    return [make(c) for c in COMPONENTS]
