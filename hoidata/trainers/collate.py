"""SFT and DPO batches whose prompts list the tools a sample was written with.

TRL's vision collators render every conversation without tools, so a chain-of-focus sample or a
preference pair from tool-using rollouts would train on a system prompt that differs from the one
GRPO and generation show the model. These collators render each sample with its ``tools`` column:
for SFT, samples sharing a tool list are collated together by TRL's own code (one processor call
per group), and the groups are padded into one batch; a DPO dataset has one tool list (checked
before training starts). A batch without tools goes through TRL's path unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch
from trl.trainer.dpo_trainer import DataCollatorForVisionPreference
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

PADDING = {"input_ids": None, "attention_mask": 0, "labels": -100}  # None: the tokenizer's pad id


class _WithTools:
    """The processor, with ``tools`` passed to every chat-template call."""

    def __init__(self, processor: Any, tools: list[dict[str, Any]]) -> None:
        self._processor, self._tools = processor, tools

    def apply_chat_template(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("tools", None)  # TRL's helpers pass tools=None explicitly
        return self._processor.apply_chat_template(*args, tools=self._tools, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._processor(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._processor, name)


@dataclass
class ToolAwareCollator(DataCollatorForVisionLanguageModeling):
    def _collate_language_modeling(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        groups: dict[str | None, list[dict[str, Any]]] = {}
        for example in examples:
            tools = example.get("tools")
            key = tools if isinstance(tools, str) or tools is None else json.dumps(tools)
            groups.setdefault(key, []).append({k: v for k, v in example.items() if k != "tools"})
        outputs = []
        processor = self.processor
        for key, group in groups.items():
            if key is not None:
                self.processor = _WithTools(processor, json.loads(key))
            try:
                outputs.append(super()._collate_language_modeling(group))
            finally:
                self.processor = processor
        return outputs[0] if len(outputs) == 1 else self._merge(outputs)

    def _merge(self, outputs: list[dict[str, Any]]) -> dict[str, Any]:
        """Right-pad the token tensors of every group to one length; stack the image tensors."""
        length = max(o["input_ids"].shape[1] for o in outputs)
        pad_id = self.processor.tokenizer.pad_token_id
        merged: dict[str, Any] = {}
        for key in outputs[0]:
            parts = [o[key] for o in outputs]
            per_token = all(
                p.dim() == 2 and p.shape[1] == o["input_ids"].shape[1]
                for p, o in zip(parts, outputs, strict=True)
            )
            if per_token and key not in ("pixel_values", "image_grid_thw"):
                fill = PADDING.get(key, 0)
                fill = pad_id if fill is None else fill
                parts = [torch.nn.functional.pad(p, (0, length - p.shape[1]), value=fill) for p in parts]
            merged[key] = torch.cat(parts, dim=0)
        return merged


def _tool_list(tools: Any) -> list[dict[str, Any]] | None:
    """A ``tools`` cell (JSON text, a list, or None) as the list chat templates take."""
    return json.loads(tools) if isinstance(tools, str) else tools


@dataclass
class ToolAwarePreferenceCollator(DataCollatorForVisionPreference):
    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        tools = _tool_list(examples[0].get("tools"))
        examples = [{k: v for k, v in e.items() if k != "tools"} for e in examples]
        if not tools:
            return super().torch_call(examples)
        processor = self.processor
        self.processor = _WithTools(processor, tools)
        try:
            return super().torch_call(examples)
        finally:
            self.processor = processor
