"""Text from outside (model completions, servers, annotation files) made safe to store and parse."""

from __future__ import annotations


def valid_text(text: str) -> str:
    """``text`` as valid UTF-8. Lone surrogates (what a JSON ``"\\ud800"`` escape from a server
    decodes to) cannot be encoded, so Arrow and every writer refuse them: they become U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text
