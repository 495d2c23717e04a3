"""The spatial-linking module on tiny Qwen2.5-VL and Qwen3-VL: identity, untouched positions and
DeepStack, detaching, batches (padding, several images, any number of boxes), gradient
checkpointing, box → cell mapping, bad input and the parameter formula."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from spatial_fixtures import FAMILIES, FRAMES, boxes_text, chat, images, load

from hoidata.errors import HoidataError
from hoidata.models.spatial_boxes import MergedGrid, box_cells
from hoidata.models.spatial_config import (
    HIDDEN_SIZES,
    SpatialLinkingConfig,
    config_from_model,
    describe_sizes,
    parameter_count,
)
from hoidata.models.spatial_linking import (
    SpatialLinking,
    attach_spatial_linking,
    detach_spatial_linking,
    find_linker,
)


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request: Any, tiny_vlm: Any) -> tuple[str, Any, Any]:
    processor, model = load(tiny_vlm(request.param))
    return request.param, processor, model


def _batch(family: str, processor: Any, side: str = "right") -> Any:
    """Row 0: one image, three boxes. Row 1: no box. Row 2: two images, a box on the second."""
    a, b = images()
    texts = [
        chat(
            processor,
            [None, "Look at " + boxes_text(family, (10, 10, 60, 80), (50, 40, 90, 90), (0, 0, 100, 100))],
        ),
        chat(processor, [None, "What happens here?"]),
        chat(processor, [None, "first", None, "then " + boxes_text(family, (30, 5, 70, 45))]),
    ]
    processor.tokenizer.padding_side = side
    return processor(text=texts, images=[a, b, a, b], return_tensors="pt", padding=True)


def _attach(model: Any, processor: Any, family: str, **settings: Any) -> Any:
    return attach_spatial_linking(
        model, processor.tokenizer, config_from_model(model.config, FRAMES[family], **settings)
    )


def test_identity_mode_leaves_logits_and_positions_as_the_base_computes_them(family_model: Any) -> None:
    family, processor, model = family_model
    inputs = _batch(family, processor)
    seen: list[dict[str, Any]] = []
    spy = model.model.language_model.register_forward_pre_hook(
        lambda _, args, kwargs: seen.append(dict(kwargs)), with_kwargs=True
    )
    try:
        with torch.no_grad():
            base = model(**inputs).logits
            _attach(model, processor, family, identity_init=True)
            same = model(**inputs).logits
            detach_spatial_linking(model)
            _attach(model, processor, family)  # Xavier: box tokens change, nothing else does
            linked = model(**inputs).logits
            detach_spatial_linking(model)
    finally:
        spy.remove()
    assert torch.allclose(base, same, atol=1e-5, rtol=0)
    assert not torch.allclose(base, linked, atol=1e-3)
    # what the language model receives besides the embeddings is the base model's, bit for bit
    first, last = seen[0], seen[-1]
    assert first.keys() == last.keys()
    names = {"position_ids", "attention_mask"} | (
        {"visual_pos_masks", "deepstack_visual_embeds"} if family == "qwen3-vl" else set()
    )
    assert names <= first.keys()
    for name in names:
        a, b = first[name], last[name]
        pairs = zip(a, b, strict=True) if isinstance(a, list) else [(a, b)]
        assert all(torch.equal(x, y) for x, y in pairs), name


def test_only_box_end_embeddings_change(family_model: Any) -> None:
    family, processor, model = family_model
    inputs = _batch(family, processor)
    captured: list[torch.Tensor] = []
    _attach(model, processor, family)
    spy = model.model.language_model.layers[0].register_forward_pre_hook(
        lambda _, args, kwargs: captured.append((args[0] if args else kwargs["hidden_states"]).detach()),
        with_kwargs=True,
    )
    try:
        with torch.no_grad():
            model(**inputs)
            detach_spatial_linking(model)
            model(**inputs)
    finally:
        spy.remove()
    box_end = processor.tokenizer.convert_tokens_to_ids("<|box_end|>")
    changed = (captured[0] != captured[1]).any(-1)
    assert torch.equal(changed, inputs["input_ids"] == box_end)


def test_detaching_restores_the_base_model(family_model: Any) -> None:
    family, processor, model = family_model
    inputs = _batch(family, processor)
    keys = set(model.state_dict())
    with torch.no_grad():
        base = model(**inputs).logits
        module = _attach(model, processor, family)
        assert {k for k in model.state_dict() if k not in keys} == {
            f"spatial_linking.{k}" for k in module.state_dict()
        }
        assert not torch.allclose(model(**inputs).logits, base, atol=1e-3)
        assert detach_spatial_linking(model) is module
        assert torch.equal(model(**inputs).logits, base)
    assert set(model.state_dict()) == keys and find_linker(model) is None
    assert not model.model._forward_pre_hooks and not model.model.language_model._forward_pre_hooks


def test_batches_are_padding_safe_and_link_each_box_to_its_image(family_model: Any) -> None:
    family, processor, model = family_model
    _attach(model, processor, family)
    linker = find_linker(model)
    try:
        outs = {}
        for side in ("right", "left"):
            inputs = _batch(family, processor, side)
            linker.record, linker.recorded = True, []
            with torch.no_grad():
                logits = model(**inputs).logits
            recorded = linker.recorded
            box_end = processor.tokenizer.convert_tokens_to_ids("<|box_end|>")
            outs[side] = [logits[r][inputs["input_ids"][r] == box_end] for r in range(3)]
            assert [(r["box"].row, r["box"].index, r["box"].image) for r in recorded] == [
                (0, 0, 0),
                (0, 1, 0),
                (0, 2, 0),
                (2, 0, 3),  # row 2's box follows its second image: the batch's fourth
            ]
            for r in recorded:  # attention lies on the box's cells only and sums to one per head
                assert r["weights"].shape[1] == len(r["box"].cells)
                np.testing.assert_allclose(r["weights"].sum(-1), 1.0, atol=1e-5)
        for r in range(3):
            torch.testing.assert_close(outs["right"][r], outs["left"][r], atol=1e-4, rtol=1e-4)
        # one sample alone gives what it gives in the batch
        a, b = images()
        alone = processor(
            text=[chat(processor, [None, "first", None, "then " + boxes_text(family, (30, 5, 70, 45))])],
            images=[a, b],
            return_tensors="pt",
        )
        with torch.no_grad():
            single = model(**alone).logits[0][alone["input_ids"][0] == box_end]
        torch.testing.assert_close(single, outs["right"][2], atol=1e-4, rtol=1e-4)
    finally:
        linker.record = False
        detach_spatial_linking(model)


def test_generation_links_the_prompt_and_decodes_untouched(family_model: Any) -> None:
    family, processor, model = family_model
    a, _ = images()
    inputs = processor(
        text=[chat(processor, [None, "Look at " + boxes_text(family, (10, 10, 60, 80))])],
        images=[a],
        return_tensors="pt",
    )
    _attach(model, processor, family)
    linker = find_linker(model)
    linker.record, linker.recorded = True, []
    try:
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=3, do_sample=False)
        assert len(linker.recorded) == 1  # the prefill; decoding steps carry no image and pass through
    finally:
        linker.record = False
        detach_spatial_linking(model)


def test_assistant_boxes_are_not_linked(family_model: Any) -> None:
    family, processor, model = family_model
    a, _ = images()
    text = chat(processor, [None, "Where?"], answer=boxes_text(family, (10, 10, 60, 80)))
    _attach(model, processor, family)
    linker = find_linker(model)
    try:
        ids = processor(text=[text], images=[a], return_tensors="pt")
        assert linker.locate(ids["input_ids"], ids["image_grid_thw"]) == []
    finally:
        detach_spatial_linking(model)


def test_gradients_reach_the_module_under_gradient_checkpointing(family_model: Any) -> None:
    family, processor, model = family_model
    inputs = _batch(family, processor)
    module = _attach(model, processor, family)
    model.train()
    model.activation_checkpointing_enable()
    try:
        model(**inputs, labels=inputs["input_ids"]).loss.backward()
        for name, p in module.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    finally:
        model.activation_checkpointing_disable()
        model.eval()
        model.zero_grad(set_to_none=True)
        detach_spatial_linking(model)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<|box_start|>[10, 10, 50, 50]", "do not pair up"),
        ("<|box_start|>[10, 10, 50]<|box_end|>", "four numbers"),
        ("<|box_start|>[10, 10, 50, 5000]<|box_end|>", "outside the image"),
        ("<|box_start|>[60, 10, 50, 50]<|box_end|>", "inverted"),
    ],
)
def test_bad_boxes_are_one_line_errors(family_model: Any, text: str, message: str) -> None:
    family, processor, model = family_model
    a, _ = images()
    inputs = processor(text=[chat(processor, [None, text])], images=[a], return_tensors="pt")
    _attach(model, processor, family)
    try:
        with pytest.raises(HoidataError, match=message) as e:
            model(**inputs)
        assert "batch row 0" in str(e.value) and "\n" not in str(e.value)
    finally:
        detach_spatial_linking(model)


def test_a_box_before_any_image_is_an_error(family_model: Any) -> None:
    family, processor, model = family_model
    a, _ = images()
    text = chat(processor, ["Look at " + boxes_text(family, (10, 10, 60, 80)), None])
    _attach(model, processor, family)
    try:
        with pytest.raises(HoidataError, match="before any image"):
            model(**processor(text=[text], images=[a], return_tensors="pt"))
    finally:
        detach_spatial_linking(model)


def test_a_tokenizer_without_box_tokens_is_refused(family_model: Any) -> None:
    family, _, model = family_model

    class NoBoxes:
        unk_token_id = None

        def convert_tokens_to_ids(self, token: str) -> int | None:
            return None if "box" in token else 1

    with pytest.raises(HoidataError, match="no <\\|box_start\\|> token") as e:
        attach_spatial_linking(model, NoBoxes(), config_from_model(model.config, FRAMES[family]))
    assert "tokenizer" in str(e.value)


def test_box_cells_follow_the_merged_grid() -> None:
    grid = MergedGrid.from_thw((1, 10, 14), merge=2, patch=14)  # 5 rows × 7 cols of 28 px: 196×140
    assert grid.tokens == 35 and grid.frame_size("resized-pixels") == (196.0, 140.0)
    assert box_cells([0, 0, 28, 28], grid, "resized-pixels").tolist() == [0]
    assert box_cells([0, 0, 196, 140], grid, "resized-pixels").tolist() == list(range(35))
    assert box_cells([30, 30, 80, 60], grid, "resized-pixels").tolist() == [8, 9]  # centres at 42, 70 / 42
    assert box_cells([50, 50, 51, 51], grid, "resized-pixels").tolist() == [8]  # smaller than a cell
    assert box_cells([520, 0, 1000, 1000], grid, "relative-1000").tolist() == [
        r * 7 + c for r in range(5) for c in range(4, 7)
    ]
    video = MergedGrid.from_thw((2, 4, 4), merge=2, patch=16)
    assert box_cells([0, 0, 1000, 500], video, "relative-1000").tolist() == [0, 1, 4, 5]
    with pytest.raises(ValueError, match="outside"):
        box_cells([0, 0, 197, 10], grid, "resized-pixels")


def test_parameter_formula_matches_the_module_at_every_size() -> None:
    for settings in ({}, {"heads": 4, "mlp_ratio": 1.0}, {"attn_dim": 16, "mlp_ratio": 0.25}):
        cfg = SpatialLinkingConfig(hidden_size=32, **settings)
        built = sum(p.numel() for p in SpatialLinking(cfg).parameters())
        assert built == parameter_count(32, cfg.heads, cfg.mlp_ratio, cfg.attn_dim)
    from transformers import Qwen2_5_VLConfig, Qwen3VLConfig

    configs = {  # the released checkpoints' text hidden sizes, from configs built here (nothing downloaded)
        "Qwen2.5-VL-3B": Qwen2_5_VLConfig(
            text_config={"hidden_size": 2048}, vision_config={"out_hidden_size": 2048}
        ),
        "Qwen2.5-VL-7B": Qwen2_5_VLConfig(
            text_config={"hidden_size": 3584}, vision_config={"out_hidden_size": 3584}
        ),
        "Qwen3-VL-8B": Qwen3VLConfig(
            text_config={"hidden_size": 4096}, vision_config={"out_hidden_size": 4096}
        ),
    }
    sizes = describe_sizes()
    for name, config in configs.items():
        cfg = config_from_model(config, "relative-1000")
        assert cfg.hidden_size == HIDDEN_SIZES[name]
        with torch.device("meta"):
            module = SpatialLinking(cfg)
        assert sum(p.numel() for p in module.parameters()) == sizes[name]
    assert sizes == {"Qwen2.5-VL-3B": 20_995_072, "Qwen2.5-VL-7B": 64_266_496, "Qwen3-VL-8B": 83_933_184}
    assert parameter_count(3584, attn_dim=512, mlp_ratio=0.125) == 10_581_952  # a ~10M variant


def test_fused_and_explicit_attention_agree() -> None:
    torch.manual_seed(0)
    module = SpatialLinking(SpatialLinkingConfig(hidden_size=32))
    queries, patches = torch.randn(3, 32), torch.randn(3, 5, 32)
    valid = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    fused, none = module(queries, patches, valid)
    explicit, weights = module(queries, patches, valid, need_weights=True)
    assert none is None and weights is not None
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)
    assert torch.all(weights[~valid[:, None, :].expand_as(weights)] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 8))


def test_a_training_batch_without_boxes_still_involves_every_weight(family_model: Any) -> None:
    """DDP and ZeRO need every trainable weight in every rank's step: a box-less batch gives zeros."""
    family, processor, model = family_model
    a, _ = images()
    inputs = processor(text=[chat(processor, [None, "What happens here?"])], images=[a], return_tensors="pt")
    module = _attach(model, processor, family)
    try:
        with torch.no_grad():
            base = model(**inputs).logits
        model(**inputs, labels=inputs["input_ids"]).loss.backward()
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads) and all(float(g.abs().sum()) == 0 for g in grads)
        with torch.no_grad():
            assert torch.equal(model(**inputs).logits, base)
    finally:
        model.zero_grad(set_to_none=True)
        detach_spatial_linking(model)
