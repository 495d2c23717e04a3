"""The spatial-linking module, and how it rides on a transformers Qwen2.5-VL / Qwen3-VL model.

For every ``<|box_start|>BOX<|box_end|>`` of a prompt (user, system and tool turns), the embedding
at ``<|box_end|>`` attends to the visual tokens (patch-merger outputs) inside ``BOX`` on the latest
image before it, is refined by a small MLP and written back, so the language model reads "this
box" as the pixels in it.

How it attaches, and why nothing else changes: forward pre-hooks. One on the multimodal model
(``model.model``) notes the ``input_ids`` and ``image_grid_thw`` of the call (``generate`` encodes
images beforehand: their grid is noted from the vision tower's call); one on its language
model receives the ``inputs_embeds`` the base model built (image embeddings already scattered in)
together with the ``position_ids`` (multimodal RoPE, from ``get_rope_index``) and, for Qwen3-VL,
``visual_pos_masks`` / ``deepstack_visual_embeds``, and replaces only the embeddings at the
``<|box_end|>`` positions. Positions and DeepStack features pass through as the base model computed
them. The boxes are read from the prompt's own tokens, so SFT, DPO, GRPO rollouts and ``generate``
all link the same way; forwards without images (decoding steps) pass through untouched. The hooks
run outside the decoder layers, so gradient checkpointing recomputes nothing of the module. A
training batch without boxes runs the module once on a zero box and adds it times zero: every
weight takes part in every step, as DDP and ZeRO require of each process.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from hoidata.errors import HoidataError
from hoidata.models.spatial_boxes import MergedGrid, box_cells
from hoidata.models.spatial_config import WEIGHTS_FILE, SpatialLinkingConfig
from hoidata.profiles.text import BOX_END, BOX_START
from hoidata.sft.spatial_prompt import box_numbers

TURN_START = "<|im_start|>"
ATTRIBUTE = "spatial_linking"  # the module's name on the model: its weights are spatial_linking.*


class SpatialLinking(nn.Module):
    """Cross-attention from box queries to their patches, then a refine MLP; pre-norm residuals.

    ``x = q + W_o·MHA(LN(q), LN(patches))``, ``out = x + MLP(LN(x))``. Identity init zeroes ``W_o``
    and the MLP's last layer (``out == q`` exactly; those two get gradients at once, the rest from the
    second step on); Xavier init otherwise.
    """

    def __init__(self, cfg: SpatialLinkingConfig) -> None:
        super().__init__()
        self.config = cfg
        d, a, h = cfg.hidden_size, cfg.inner_dim, cfg.mlp_dim
        self.norm_query = nn.LayerNorm(d)
        self.norm_patches = nn.LayerNorm(d)
        self.query = nn.Linear(d, a)
        self.key_value = nn.Linear(d, 2 * a)  # keys and values in one product
        self.output = nn.Linear(a, d)
        self.norm_mlp = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, h), nn.GELU(), nn.Linear(h, d))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.modules():
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
            elif isinstance(layer, nn.LayerNorm):
                layer.reset_parameters()
        if self.config.identity_init:
            for layer in (self.output, self.mlp[-1]):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(
        self, queries: torch.Tensor, patches: torch.Tensor, valid: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``queries`` (B, d), ``patches`` (B, n, d), ``valid`` (B, n) bool → (updated queries (B, d),
        with ``need_weights`` the attention weights (B, heads, n), zero where not valid)."""
        heads = self.config.heads
        b, n, _ = patches.shape
        q = self.query(self.norm_query(queries)).view(b, heads, 1, -1)
        k, v = self.key_value(self.norm_patches(patches)).view(b, n, 2, heads, -1).permute(2, 0, 3, 1, 4)
        weights = None
        if need_weights:  # the explicit softmax (attention maps); otherwise the fused kernel
            scores = (q @ k.transpose(-1, -2)).squeeze(2) / math.sqrt(q.shape[-1])
            scores = scores.masked_fill(~valid[:, None, :], torch.finfo(scores.dtype).min)
            weights = scores.softmax(dim=-1) * valid[:, None, :]
            context = (weights.unsqueeze(2) @ v).reshape(b, -1)
        else:
            context = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=valid[:, None, None, :])
            context = context.reshape(b, -1)
        x = queries + self.output(context)
        return x + self.mlp(self.norm_mlp(x)), weights


@dataclass
class LinkedBox:
    """One box of a batch: where its ``<|box_end|>`` is and which visual tokens it covers."""

    row: int  # batch row
    index: int  # k-th box of its row
    end: int  # position of its <|box_end|>
    image: int  # index of its image among the batch's images (image_grid_thw row)
    box: list[float]  # as written, in the profile's frame
    grid: MergedGrid
    cells: np.ndarray  # indices into the image's visual tokens
    positions: np.ndarray  # the same cells as sequence positions


@dataclass
class _ImageRun:
    row: int
    start: int
    image: int
    grid: MergedGrid


class SpatialLinker:
    """The hooks that run a :class:`SpatialLinking` inside a Qwen VL forward (see the module docstring).

    ``record = True`` keeps, per forward, every box with its head-wise attention (``recorded``).
    """

    def __init__(self, model: Any, module: SpatialLinking, tokenizer: Any) -> None:
        outer, language = model_parts(model)
        self.module, self.tokenizer = module, tokenizer
        self.box_start, self.box_end = box_token_ids(tokenizer)
        self.image_token = int(model.config.image_token_id)
        # an assistant's own boxes are never linked: in generation they are written token by token
        self.turn_start = tokenizer.convert_tokens_to_ids(TURN_START)
        self.assistant = tokenizer.encode("assistant", add_special_tokens=False)
        self.record = False
        self.recorded: list[dict[str, Any]] = []
        self._pending: tuple[Any, Any] | None = None
        self._pieces: dict[int, str] = {}
        self._encoded_grid: Any = None  # grid_thw of the vision tower's last call
        self._handles = [
            outer.visual.register_forward_pre_hook(self._note_grid, with_kwargs=True),
            outer.register_forward_pre_hook(self._note_inputs, with_kwargs=True),
            language.register_forward_pre_hook(self._link, with_kwargs=True),
        ]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _note_grid(self, _: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        self._encoded_grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)

    def _note_inputs(self, _: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        grid = kwargs.get("image_grid_thw")
        if grid is None and (kwargs.get("mm_encoder_outputs") or {}).get("image") is not None:
            grid = self._encoded_grid  # generate encodes the images first, then passes their features
        self._pending = (input_ids, grid)

    def _link(self, _: Any, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]] | None:
        pending, self._pending = self._pending, None
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            return None
        ready = pending is not None and pending[0] is not None and pending[1] is not None
        boxes = self.locate(*pending) if ready else []
        if boxes:
            kwargs["inputs_embeds"] = self.apply(embeds, boxes)
        elif torch.is_grad_enabled() and any(p.requires_grad for p in self.module.parameters()):
            kwargs["inputs_embeds"] = embeds + 0.0 * self._idle(embeds)
        else:
            return None
        return args, kwargs

    def _idle(self, embeds: torch.Tensor) -> torch.Tensor:
        """The module on one zero box, as a scalar: added times zero to a training batch without boxes,
        every weight takes part in the step (a zero gradient), as DDP and ZeRO require of every rank."""
        zeros = embeds.new_zeros(1, 1, embeds.shape[-1], dtype=self.module.query.weight.dtype)
        valid = torch.ones(1, 1, dtype=torch.bool, device=embeds.device)
        out, _ = self.module(zeros[:, 0], zeros, valid)
        return out.sum().to(embeds.dtype)

    def apply(self, embeds: torch.Tensor, boxes: list[LinkedBox]) -> torch.Tensor:
        """``embeds`` with each box's ``<|box_end|>`` embedding replaced by the module's output."""
        width = max(len(b.positions) for b in boxes)
        positions = np.zeros((len(boxes), width), np.int64)
        valid = np.zeros((len(boxes), width), bool)
        for i, b in enumerate(boxes):
            positions[i, : len(b.positions)] = b.positions
            valid[i, : len(b.positions)] = True
        device = embeds.device
        rows = torch.tensor([b.row for b in boxes], device=device)
        ends = torch.tensor([b.end for b in boxes], device=device)
        patches = embeds[rows[:, None], torch.from_numpy(positions).to(device)]
        dtype = self.module.query.weight.dtype
        out, weights = self.module(
            embeds[rows, ends].to(dtype), patches.to(dtype), torch.from_numpy(valid).to(device), self.record
        )
        if weights is not None:
            w = weights.detach().float().cpu().numpy()
            self.recorded += [{"box": b, "weights": w[i, :, : len(b.cells)]} for i, b in enumerate(boxes)]
        return embeds.index_put((rows, ends), out.to(embeds.dtype))

    def locate(self, input_ids: torch.Tensor, image_grid_thw: torch.Tensor) -> list[LinkedBox]:
        """Every complete box of a forward that carries images, with its image and cells.

        One-line errors (batch row, box) when box tokens do not pair up, a box is not four numbers,
        comes before any image, or lies outside its image."""
        ids = input_ids.detach().cpu().numpy()
        starts, ends = ids == self.box_start, ids == self.box_end
        if not (starts.any() or ends.any()) or not (ids == self.image_token).any():
            return []
        cfg = self.module.config
        grids = [MergedGrid.from_thw(thw, cfg.merge_size, cfg.patch_size) for thw in image_grid_thw.tolist()]
        runs = self._image_runs(ids, grids)
        boxes: list[LinkedBox] = []
        for row in range(ids.shape[0]):
            where = f"batch row {row}"
            turns = np.flatnonzero(ids[row] == self.turn_start) if self.turn_start is not None else []
            spans = [
                (s, e)
                for s, e in self._spans(np.flatnonzero(starts[row]), np.flatnonzero(ends[row]), row)
                if not self._in_assistant_turn(ids[row], turns, s)
            ]
            for k, (start, end) in enumerate(spans):
                inner = self._text(ids[row, start + 1 : end].tolist())
                box = box_numbers(inner)
                if box is None:
                    raise HoidataError(
                        f"{inner!r} is not a box of four numbers", record=where, field=f"box {k}"
                    )
                before = [r for r in runs if r.row == row and r.start < start]
                if not before:
                    raise HoidataError("the box comes before any image", record=where, field=f"box {k}")
                run = before[-1]
                try:
                    cells = box_cells(box, run.grid, cfg.box_frame)
                except ValueError as e:
                    raise HoidataError(str(e), record=where, field=f"box {k}") from None
                boxes.append(LinkedBox(row, k, int(end), run.image, box, run.grid, cells, run.start + cells))
        return boxes

    def _text(self, tokens: list[int]) -> str:
        """The text of a box's tokens, each decoded once (box text is ASCII: pieces concatenate)."""
        pieces = self._pieces
        for token in tokens:
            if token not in pieces:
                pieces[token] = self.tokenizer.decode([token], skip_special_tokens=False)
        return "".join([pieces[t] for t in tokens])

    def _image_runs(self, ids: np.ndarray, grids: list[MergedGrid]) -> list[_ImageRun]:
        """The images of the batch in order (rows first): runs of image tokens, one per grid row."""
        runs: list[_ImageRun] = []
        for row in range(ids.shape[0]):
            where = np.flatnonzero(ids[row] == self.image_token)
            if not len(where):
                continue
            breaks = np.flatnonzero(np.diff(where) != 1) + 1
            for group in np.split(where, breaks):
                image, length = len(runs), len(group)
                if image >= len(grids) or length != grids[image].tokens:
                    expected = grids[image].tokens if image < len(grids) else 0
                    raise HoidataError(
                        f"image {image} has {length} tokens in the text, image_grid_thw implies {expected}",
                        record=f"batch row {row}",
                        field="image_grid_thw",
                    )
                runs.append(_ImageRun(row, int(group[0]), image, grids[image]))
        return runs

    def _in_assistant_turn(self, ids: np.ndarray, turns: Any, position: int) -> bool:
        """Whether ``position`` lies in an assistant turn (``turns``: the row's ``<|im_start|>`` positions)."""
        before = [t for t in turns if t < position]
        if not before:
            return False
        role = ids[before[-1] + 1 : before[-1] + 1 + len(self.assistant)].tolist()
        return role == self.assistant

    def _spans(self, opens: np.ndarray, closes: np.ndarray, row: int) -> list[tuple[int, int]]:
        spans = list(zip(opens.tolist(), closes.tolist(), strict=False))
        nested = any(o2 < c for (_, c), (o2, _) in itertools.pairwise(spans))
        if len(opens) != len(closes) or nested or any(o > c for o, c in spans):
            raise HoidataError(
                f"{len(opens)} {BOX_START} and {len(closes)} {BOX_END} do not pair up",
                record=f"batch row {row}",
                field="input_ids",
            )
        return spans


# ---- attaching, saving, loading ----------------------------------------------------------------
def model_parts(model: Any) -> tuple[Any, Any]:
    """The multimodal model and its language model, for Qwen2.5-VL / Qwen3-VL (transformers 5)."""
    outer = getattr(model, "model", None)
    language = getattr(outer, "language_model", None)
    if language is None or not hasattr(getattr(model, "config", None), "image_token_id"):
        raise HoidataError(
            f"spatial linking attaches to Qwen2.5-VL / Qwen3-VL models; {type(model).__name__} has no "
            "model.language_model"
        )
    return outer, language


def box_token_ids(tokenizer: Any) -> tuple[int, int]:
    """The ids of ``<|box_start|>`` and ``<|box_end|>``; a one-line error when the vocabulary lacks them."""
    ids = []
    for token in (BOX_START, BOX_END):
        found = tokenizer.convert_tokens_to_ids(token)
        if found is None or found == tokenizer.unk_token_id:
            raise HoidataError(
                f"the tokenizer has no {token} token: spatial linking needs box tokens in the vocabulary",
                field="tokenizer",
            )
        ids.append(int(found))
    return ids[0], ids[1]


def attach_spatial_linking(
    model: Any, tokenizer: Any, cfg: SpatialLinkingConfig, *, seed: int | None = 0
) -> SpatialLinking:
    """Register a new module as ``model.spatial_linking`` (the model's device and dtype) and hook it in.

    Its weights are left out of the model's own checkpoint (``_keys_to_ignore_on_save``): they go to
    ``spatial_linking.safetensors`` (:func:`save_spatial_linking`)."""
    if find_spatial_linking(model) is not None:
        raise HoidataError("the model already carries a spatial-linking module")
    box_token_ids(tokenizer)
    hidden = int(getattr(model.config, "text_config", model.config).hidden_size)
    if hidden != cfg.hidden_size:
        raise HoidataError(f"spatial linking: module hidden size {cfg.hidden_size}, the model's {hidden}")
    weight = model.get_input_embeddings().weight
    if seed is not None:
        torch.manual_seed(seed)
    module = SpatialLinking(cfg).to(device=weight.device, dtype=weight.dtype)
    model.add_module(ATTRIBUTE, module)
    ignored = set(getattr(model, "_keys_to_ignore_on_save", None) or ())
    model._keys_to_ignore_on_save = ignored | {f"{ATTRIBUTE}.{k}" for k in module.state_dict()}
    model.spatial_linker = SpatialLinker(model, module, tokenizer)
    return module


def detach_spatial_linking(model: Any) -> SpatialLinking | None:
    """Remove the module and its hooks; the model is the base model again. Returns the module."""
    linker = model.__dict__.pop("spatial_linker", None)
    if linker is not None:
        linker.remove()
    module = model._modules.pop(ATTRIBUTE, None)
    if module is not None:
        keys = {f"{ATTRIBUTE}.{k}" for k in module.state_dict()}
        model._keys_to_ignore_on_save = set(model._keys_to_ignore_on_save or ()) - keys
    return module


def find_spatial_linking(model: Any) -> SpatialLinking | None:
    """The module attached anywhere inside ``model`` (PEFT and accelerate wrappers included)."""
    return next((m for m in model.modules() if isinstance(m, SpatialLinking)), None)


def find_linker(model: Any) -> SpatialLinker | None:
    """The hooks object of the module attached inside ``model``."""
    for m in model.modules():
        linker = m.__dict__.get("spatial_linker")
        if linker is not None:
            return linker
    return None


def full_state(module: SpatialLinking) -> dict[str, torch.Tensor]:
    """The module's weights as whole float32 CPU tensors (sharded ones gathered: every process calls)."""
    state = {}
    for k, v in module.state_dict().items():
        if hasattr(v, "full_tensor"):  # a DTensor (FSDP2): gather the shards
            v = v.full_tensor()
        state[k] = v.detach().float().cpu().contiguous()
    return state


def save_spatial_linking(
    module: SpatialLinking, directory: Path | str, state: dict[str, torch.Tensor] | None = None
) -> Path:
    """``spatial_linking.safetensors`` (float32; ``state``, else the module's) and ``spatial_linking.json``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_file(
        state if state is not None else full_state(module), str(out / WEIGHTS_FILE), metadata={"format": "pt"}
    )
    module.config.save(out)
    return out / WEIGHTS_FILE


def read_spatial_weights(directory: Path | str) -> dict[str, torch.Tensor]:
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise HoidataError(f"no {WEIGHTS_FILE}", file=str(Path(directory)))
    try:
        return load_file(str(path))
    except Exception as e:  # a truncated or foreign file: say which, in one line
        raise HoidataError(f"unreadable: {type(e).__name__}: {e}", file=str(path)) from None


def load_weights_into(module: SpatialLinking, directory: Path | str) -> None:
    """Copy saved weights into ``module`` (same shapes required)."""
    state = read_spatial_weights(directory)
    try:
        with torch.no_grad():
            module.load_state_dict({k: v.to(module.query.weight.dtype) for k, v in state.items()})
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        where = str(Path(directory) / WEIGHTS_FILE)
        raise HoidataError(f"weights do not fit the module: {first}", file=where) from None


def load_spatial_linking(model: Any, directory: Path | str, tokenizer: Any) -> SpatialLinking:
    """Attach the module saved in ``directory`` (a run, a checkpoint or a merged model) to ``model``."""
    cfg = SpatialLinkingConfig.load(directory)
    module = attach_spatial_linking(model, tokenizer, cfg, seed=None)
    load_weights_into(module, directory)
    return module
