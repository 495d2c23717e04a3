"""A few rows rendered for the dataset card: boxes drawn on HOI samples, the first image and the
conversation as text for SFT/DPO rows."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from hoidata.viz.draw import draw_sample

EXAMPLE_SIDE = 640  # longest side of a rendered example, in pixels
CONVERSATION_COLUMNS = ("messages", "prompt", "completion", "chosen", "rejected")


@dataclass
class Example:
    image: str  # file name under assets/
    caption: str  # markdown


def fence(text: str, lang: str = "text") -> str:
    """A fenced block that no backtick run inside the text can close early."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _conversation(row: dict[str, Any]) -> str:
    """The conversation columns of an SFT/DPO row as plain text, one message per paragraph."""
    blocks = []
    for col in CONVERSATION_COLUMNS:
        value = row.get(col)
        if value is None:
            continue
        lines = []
        for msg in value if isinstance(value, list) else [value]:
            if isinstance(msg, dict):
                content = msg.get("content")
                if isinstance(content, list):
                    content = " ".join(
                        (p.get("text") or "") if p.get("type") == "text" else f"<{p.get('type')}>"
                        for p in content
                        if isinstance(p, dict)
                    )
                calls = [
                    f"[calls {c['function'].get('name')}({c['function'].get('arguments') or ''})]"
                    for c in msg.get("tool_calls") or []
                    if isinstance(c, dict) and isinstance(c.get("function"), dict)
                ]
                lines.append(" ".join([f"{msg.get('role', '?')}: {content or ''}".rstrip(), *calls]))
            else:
                lines.append(str(msg))
        blocks.append(f"**{col}**\n\n" + fence("\n\n".join(lines)))
    return "\n\n".join(blocks)


def render_example(row: dict[str, Any], k: int, assets: Path) -> Example | None:
    """Save row ``k`` as ``assets/example-{k}.png`` with its caption; None for a row without an image."""
    image = row.get("image")
    images = row.get("images") or []
    if isinstance(image, dict) and image.get("bytes") and row.get("instances") is not None:
        im = draw_sample(row)
        pairs = [
            f"{row['instances'][p['subject']]['label']} {p['verb']} "
            + (row["instances"][p["object"]]["label"] if p["object"] >= 0 else "")
            for p in row.get("interactions") or []
        ]
        caption = f"`{row.get('sample_id', k)}`: " + ("; ".join(s.strip() for s in pairs) or "no interaction")
    else:
        first = image if isinstance(image, dict) else next((i for i in images if i and i.get("bytes")), None)
        if not first or not first.get("bytes"):
            return None
        im = Image.open(io.BytesIO(first["bytes"])).convert("RGB")
        more = f" (+{len(images) - 1} more images)" if len(images) > 1 else ""
        caption = f"`{row.get('sample_id', k)}`{more}"
        text = _conversation(row)
        if text:
            caption += "\n\n" + text
    im.thumbnail((EXAMPLE_SIDE, EXAMPLE_SIDE))
    name = f"example-{k}.png"
    im.save(assets / name, format="PNG")
    return Example(name, caption)
