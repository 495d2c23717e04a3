"""Conversations as engines send them.

Tool results travel as the user turn Qwen's chat templates render a ``tool`` message as
(``<tool_response>\\n`` … ``\\n</tool_response>``, consecutive results in one turn): the same
tokens, while every engine and server treats images in user turns alike (a ``tool`` message
needs a ``tool_call_id`` some servers insist on, and image handling inside tool turns varies).
"""

from __future__ import annotations

import base64
import io
import threading
import weakref
from typing import Any

from PIL import Image

from hoidata.engines.base import Conversation


def with_tool_turns_as_user(conversation: Conversation) -> Conversation:
    out: Conversation = []
    run: list[dict[str, Any]] = []
    for message in [*conversation, None]:
        if message is not None and message.get("role") == "tool":
            run.append(message)
            continue
        if run:
            blocks: list[dict[str, Any]] = []
            for k, tool in enumerate(run):
                blocks.append({"type": "text", "text": ("\n" if k else "") + "<tool_response>\n"})
                blocks.extend(_blocks(tool.get("content")))
                blocks.append({"type": "text", "text": "\n</tool_response>"})
            out.append({"role": "user", "content": _merge_text(blocks)})
            run = []
        if message is not None:
            out.append(message)
    return out


def to_openai(conversation: Conversation, urls: ImageUrls | None = None) -> list[dict[str, Any]]:
    """Images as PNG data URLs (the OpenAI chat format every compatible server reads); ``urls``
    keeps each image's URL, so a conversation resent every turn encodes its images once."""
    urls = ImageUrls() if urls is None else urls
    messages = []
    for m in with_tool_turns_as_user(conversation):
        content = m.get("content")
        if isinstance(content, list):
            content = [_openai_block(b, urls) for b in content]
        messages.append({"role": m["role"], "content": content})
    return messages


class ImageUrls:
    """PNG data URLs of live images, by identity: an entry goes when its image does."""

    def __init__(self) -> None:
        self._urls: dict[int, tuple[weakref.ref[Image.Image], str]] = {}
        self._lock = threading.Lock()

    def url(self, image: Image.Image) -> str:
        key = id(image)
        with self._lock:
            hit = self._urls.get(key)
        if hit is not None and hit[0]() is image:
            return hit[1]
        url = png_data_url(image)
        forget = self._urls.pop
        with self._lock:
            self._urls[key] = (weakref.ref(image, lambda _: forget(key, None)), url)
        return url

    def __len__(self) -> int:
        return len(self._urls)


def png_data_url(image: Image.Image) -> str:
    """Lossless: the server decodes exactly these pixels (level 1: a fraction of the default's time)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return [{"type": "text", "text": "" if content is None else str(content)}]


def _merge_text(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adjacent text blocks joined, as the template would print them."""
    out: list[dict[str, Any]] = []
    for b in blocks:
        if b.get("type") == "text" and out and out[-1].get("type") == "text":
            out[-1] = {"type": "text", "text": out[-1]["text"] + b["text"]}
        else:
            out.append(dict(b))
    return out


def _openai_block(block: dict[str, Any], urls: ImageUrls) -> dict[str, Any]:
    if block.get("type") != "image":
        return {"type": "text", "text": block.get("text") or ""}
    image = block["image"]
    if not isinstance(image, Image.Image):
        raise TypeError(f"an image block holds {type(image).__name__}, not a PIL image")
    return {"type": "image_url", "image_url": {"url": urls.url(image)}}
