"""A tiny Stable-Diffusion inpainting pipeline built offline from configs (random weights), for tests,
benchmarks and the demo: every part a real pipeline has (UNet with 9 input channels, VAE, CLIP text
encoder and tokenizer, scheduler), saved with ``save_pretrained`` and loaded back the normal way."""

from __future__ import annotations

import json
from pathlib import Path


def _byte_vocab() -> dict[str, int]:
    """CLIP's byte-level alphabet (each byte as a printable character, alone and word-final)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, n = list(printable), 0
    for b in range(256):
        if b not in printable:
            chars.append(256 + n)
            n += 1
    letters = [chr(c) for c in chars]
    vocab = {}
    for token in letters + [c + "</w>" for c in letters] + ["<|startoftext|>", "<|endoftext|>"]:
        vocab[token] = len(vocab)
    return vocab


def build_tiny_inpainting(out: Path | str, seed: int = 0) -> Path:
    """Write a tiny inpainting pipeline to ``out`` (a few hundred KB; 32-pixel latents work)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    out = Path(out)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=16,
        in_channels=9,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
    )
    text_config = CLIPTextConfig(
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=514,
        max_position_embeddings=77,
        bos_token_id=512,
        eos_token_id=513,
        pad_token_id=513,
    )
    text_encoder = CLIPTextModel(text_config)
    vocab_dir = out / "_vocab"
    vocab_dir.mkdir(parents=True, exist_ok=True)
    (vocab_dir / "vocab.json").write_text(json.dumps(_byte_vocab()))
    (vocab_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(
        str(vocab_dir / "vocab.json"), str(vocab_dir / "merges.txt"), model_max_length=77
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    pipe = StableDiffusionInpaintPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out)
    for f in vocab_dir.iterdir():
        f.unlink()
    vocab_dir.rmdir()
    return out
