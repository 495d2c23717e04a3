"""Chat templates the project ships, and installing them on a processor.

Stock Qwen2.5-VL (and Qwen2-VL) templates cannot render tools, so TRL's GRPOTrainer refuses them for
tool use (``supports_tool_calling``). The profile names a replacement in ``profiles/templates``;
:func:`use_tool_template` puts it on the processor and its tokenizer and tells the tokenizer how to
parse tool calls back out of completions. Families whose own template handles tools (Qwen3-VL) keep
it. Torch/transformers/trl are imported lazily: the data pipeline imports this package without them.
"""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from typing import Any, TypeVar

from hoidata.profiles.profile import get_profile

P = TypeVar("P")


@cache
def load_template(name: str) -> str:
    """The text of a template shipped in ``hoidata/profiles/templates`` (package data)."""
    return (resources.files("hoidata.profiles") / "templates" / name).read_text(encoding="utf-8")


def tool_template(family: str) -> str | None:
    """The project's chat template for ``family``, or ``None`` when the model's own is kept."""
    name = get_profile(family).chat_template
    return load_template(name) if name else None


def _set_qwen_tool_call_parsing(tokenizer: Any) -> None:
    """Parse ``<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>`` the way trl does for Qwen3.

    Our template writes exactly Qwen2.5 / Qwen3-VL's tool-call text, so trl's own Qwen response
    template (transformers >= 5.13) or legacy schema applies unchanged; only trl's template-identity
    lookup (``add_response_schema``) does not know our file.
    """
    from trl import chat_template_utils as ctu

    if getattr(ctu, "_SUPPORTS_RESPONSE_TEMPLATE", True):
        tokenizer.response_template = copy.deepcopy(ctu.qwen3_template)
    else:
        tokenizer.response_schema = copy.deepcopy(ctu.qwen3_schema)


def use_tool_template(processor: P, family: str) -> P:
    """Make ``processor`` (a VLM processor or a tokenizer) render and parse tool calls for ``family``.

    Qwen2/2.5-VL get the project's ``qwen2_5_vl_tools.jinja`` on the processor and on its tokenizer,
    plus Qwen tool-call parsing. Other families keep their template; trl's ``add_response_schema``
    sets their parsing when it knows the template. Returns the same object, changed in place.

    Note that trl only swaps in its own ``*_training.jinja`` when a template is byte-identical to a
    stock one: ours carries its own ``{% generation %}`` markers, so SFT ``assistant_only_loss``
    and GRPO's prefix-preserving tool loop both use it as is.
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    text = tool_template(family)
    if text is not None:
        processor.chat_template = text  # type: ignore[attr-defined]
        if tokenizer is not processor:
            tokenizer.chat_template = text
        _set_qwen_tool_call_parsing(tokenizer)
        return processor

    if (
        getattr(tokenizer, "response_template", None) is None
        and getattr(tokenizer, "response_schema", None) is None
    ):
        from trl.chat_template_utils import add_response_schema

        add_response_schema(processor)
    return processor
