"""In-process transformers generation: small models, CPU tests, and debugging a prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hoidata.engines.base import Conversation, Generation, Sampling
from hoidata.engines.messages import with_tool_turns_as_user
from hoidata.errors import HoidataError
from hoidata.profiles.chat import use_tool_template


class HfEngine:
    """``AutoModelForImageTextToText`` + its processor; one conversation at a time.

    ``family`` installs the profile's tool-capable chat template (Qwen2/2.5-VL's stock one cannot
    render tools). The pixel budget is the processor's, as saved with the checkpoint.
    """

    name = "hf"

    def __init__(
        self, model: str, *, family: str | None = None, device: str = "cpu", dtype: str = "auto"
    ) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model = model
        self._torch = torch
        try:
            self.processor = AutoProcessor.from_pretrained(model)
            self.network = AutoModelForImageTextToText.from_pretrained(model, dtype=dtype).to(device).eval()
        except OSError as e:  # a typo in a path reads as a Hub id: say which model, in one line
            raise HoidataError(f"cannot load the model {model!r}: {str(e).splitlines()[0]}") from None
        if family is not None:
            use_tool_template(self.processor, family)
        self.device = device
        tok = self.processor.tokenizer
        self._eos = {i for i in (tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")) if i is not None}
        self._pad = tok.pad_token_id
        # tokens that would corrupt the next prompt if a (bad) model wrote them as text
        vision = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|endoftext|>")
        self._drop = {tok.convert_tokens_to_ids(t) for t in vision} - {None, tok.unk_token_id}

    def generate(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling,
        seeds: Sequence[int],
        tools: list[dict[str, Any]] | None = None,
    ) -> list[list[Generation]]:
        out = []
        for conversation, seed in zip(conversations, seeds, strict=True):
            try:
                out.append(self._one(conversation, sampling, seed, tools))
            except Exception as e:  # one bad conversation must not sink the batch
                out.append([Generation.failed(f"{type(e).__name__}: {e}")] * sampling.n)
        return out

    def _one(self, conversation: Conversation, sampling: Sampling, seed: int, tools: Any) -> list[Generation]:
        torch = self._torch
        inputs = self.processor.apply_chat_template(
            with_tool_turns_as_user(conversation),
            tools=tools,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        ).to(self.device)
        prompt_len = inputs["input_ids"].shape[1]
        torch.manual_seed(seed)
        sample = sampling.temperature > 0
        with torch.no_grad():
            ids = self.network.generate(
                **inputs,
                do_sample=sample,
                temperature=sampling.temperature if sample else None,
                top_p=sampling.top_p if sample else None,
                max_new_tokens=sampling.max_tokens,
                num_return_sequences=sampling.n,
                pad_token_id=self._pad,
            )
        return [self._decode(row[prompt_len:].tolist(), prompt_len, sampling) for row in ids]

    def _decode(self, new: list[int], prompt_len: int, sampling: Sampling) -> Generation:
        end = next((i for i, t in enumerate(new) if t in self._eos), None)
        finished = end is not None
        kept = [t for t in (new[:end] if finished else new) if t not in self._drop and t != self._pad]
        text = self.processor.tokenizer.decode(kept, skip_special_tokens=False)
        for stop in sampling.stop:
            if stop in text:
                text, finished = text[: text.index(stop)], True
        return Generation(text, prompt_len, len(kept), "stop" if finished else "length")
