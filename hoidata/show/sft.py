"""Cards of SFT samples, gen-cot rollouts and preference pairs: the conversation as the model sees
it, its boxes decoded and drawn on the model's view of the image, tool turns with their crops;
rollouts add their status and reward parts, and whether the SFT filter kept them; pairs show the
chosen and rejected completions side by side with their rewards."""

from __future__ import annotations

from typing import Any

from hoidata.profiles import Profile
from hoidata.show.conversation import Rendered, View, ground_truth_boxes, render_messages
from hoidata.show.html import esc, frame
from hoidata.show.thumbnails import ImageRef

SFT_COLUMNS = [
    "sample_id",
    "source_id",
    "task",
    "images",
    "messages",
    "width",
    "height",
    "resized_width",
    "resized_height",
    "pairs",
    "uses_tool",
]
ROLLOUT_COLUMNS = [
    *SFT_COLUMNS,
    "prompt_id",
    "rollout",
    "status",
    "error",
    "turns",
    "prompt_tokens",
    "completion_tokens",
    "rewards",
    "engine",
    "model",
]
PAIR_COLUMNS = [
    "sample_id",
    "prompt_id",
    "images",
    "prompt",
    "chosen",
    "rejected",
    "chosen_reward",
    "rejected_reward",
]


def sft_card(row: dict[str, Any], images: list[ImageRef | None], profile: Profile, extra: str = "") -> str:
    """One SFT sample (or rollout, with ``extra`` above its turns)."""
    head = [row.get("task"), f"from {row.get('source_id')}" if row.get("source_id") else None]
    if row.get("uses_tool"):
        head.append("uses tools")
    view = _view(row, profile)
    out = Rendered()
    if view is not None:
        render_messages(row.get("messages") or [], images, view, out)
        scene = _scene(images, view, out.boxes + ground_truth_boxes(row.get("pairs") or [], view))
    else:
        scene = '<p class="note">image size unknown: boxes cannot be placed</p>'
    return (
        f'<article class="card"{_data(row)}><h2>{esc(row.get("sample_id"))}</h2>'
        f'<div class="meta">{esc(" · ".join(str(h) for h in head if h))}</div>'
        f"{scene}{extra}{''.join(out.turns)}{_pairs(row.get('pairs') or [])}</article>"
    )


def rollout_card(
    row: dict[str, Any], images: list[ImageRef | None], profile: Profile, verdict: tuple[bool, str] | None
) -> str:
    """A gen-cot rollout: every turn, tool call and returned image, its reward by part, and whether
    ``filter sft`` kept it (``verdict``: kept, reason; None when no filter ran on these rollouts)."""
    status = row.get("status") or "?"
    badges = [f'<span class="badge {"ok" if status == "answered" else "bad"}">{esc(status)}</span>']
    if verdict is not None:
        kept, reason = verdict
        badges.append(
            f'<span class="badge {"ok" if kept else "bad"}">{"kept" if kept else "filtered: " + esc(reason)}</span>'
        )
    badges.append(
        f'<span class="badge">rollout {esc(row.get("rollout"))} · {esc(row.get("turns"))} turns · '
        f"{esc(row.get('prompt_tokens'))}+{esc(row.get('completion_tokens'))} tokens</span>"
    )
    error = f'<p class="note">error: {esc(row["error"])}</p>' if row.get("error") else ""
    extra = f"<div>{''.join(badges)}</div>{rewards_table(row.get('rewards') or {})}{error}"
    return sft_card(row, images, profile, extra)


def pair_card(
    row: dict[str, Any], images: list[ImageRef | None], profile: Profile, size: tuple[int, int] | None
) -> str:
    """A preference pair: the shared prompt (its images, its boxes), then chosen | rejected."""
    if size is None:
        return (
            f'<article class="card"{_data(row)}><h2>{esc(row.get("sample_id"))}</h2>'
            '<p class="note">image unreadable: boxes cannot be placed</p></article>'
        )
    view = View.of(profile, *size)
    prompt = Rendered()
    nxt = render_messages(row.get("prompt") or [], images, view, prompt)
    sides = []
    for side in ("chosen", "rejected"):
        part = Rendered(count=prompt.count, drawn=prompt.drawn)
        render_messages(row.get(side) or [], images, view, part, side=side, first_image=nxt)
        prompt.boxes += part.boxes
        prompt.count = part.count
        reward = row.get(f"{side}_reward")
        score = f"{reward:.3g}" if isinstance(reward, float) else "?"
        sides.append(f'<div class="{side}"><h3>{side} · reward {score}</h3>{"".join(part.turns)}</div>')
    return (
        f'<article class="card"{_data(row)}><h2>{esc(row.get("sample_id"))}</h2>'
        f'<div class="meta">prompt {esc(row.get("prompt_id"))}</div>'
        f"{_scene(images, view, prompt.boxes)}{''.join(prompt.turns)}"
        f'<div class="sides">{"".join(sides)}</div></article>'
    )


def rewards_table(rewards: dict[str, Any]) -> str:
    """Reward parts as bars (accuracy, format, tool, spatial, total)."""
    rows = []
    for part, value in rewards.items():  # the reward parts in their stored order, total last
        if value is None:
            continue
        top = 3.0 if part == "total" else 1.0  # total = accuracy + weighted parts: up to about 2.5
        width = max(0.0, min(1.0, float(value) / top)) * 100
        bar = f'<span class="bar"><i style="width:{width:.1f}%"></i></span>'
        rows.append(f"<span>{part}</span>{bar}<span>{float(value):.3g}</span>")
    return f'<div class="rewards">{"".join(rows)}</div>' if rows else ""


def _view(row: dict[str, Any], profile: Profile) -> View | None:
    if not row.get("width") or not row.get("height"):
        return None
    return View.of(
        profile, row["width"], row["height"], (row.get("resized_width"), row.get("resized_height"))
    )


def _scene(images: list[ImageRef | None], view: View, boxes: list[str]) -> str:
    """The first image as the model is shown it (resized), with the boxes over it."""
    ref = images[0] if images else None
    if ref is not None and ref.error:
        return f'<p class="note">{esc(ref.error)}</p>'
    caption = (
        f"model view {view.resized_width:g}×{view.resized_height:g} of the stored {view.width:g}×{view.height:g} "
        f"image · {view.profile.name}, {view.profile.frame} boxes"
    )
    return frame(ref, view.resized_width, view.resized_height, boxes, caption)


def _pairs(pairs: list[dict[str, Any]]) -> str:
    if not pairs:
        return ""
    items = "".join(
        f'<li data-hl="g{j}p g{j}o">{esc(p.get("verb"))} {esc(p.get("object"))} (ground truth)</li>'
        for j, p in enumerate(pairs)
    )
    return f'<ul class="links">{items}</ul>'


def _data(row: dict[str, Any]) -> str:
    return f' data-sample-id="{esc(row.get("sample_id"))}"'
