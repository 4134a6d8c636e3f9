"""One registry of named presets: the reference's D-JEPA-B/L/H and small ones for CPU work.

A preset is a full :class:`GeneratorConfig` (network, tokenizer, sampling defaults). CLIs offer the
registry's keys.
"""

from __future__ import annotations

from typing import Any

from djepa_core.config import GeneratorConfig, HeadKind, ModelConfig, SamplingConfig, TokenizerConfig

_VAE = TokenizerConfig(kind="vae", image_size=256, channels=3, patch_size=16, scale=0.2325)
# reference sampling: 64 AR steps; temperature 0.94 without guidance (about 0.98 with CFG 3.0)
_REF_SAMPLING = SamplingConfig(num_steps=64, cfg_scale=1.0, temperature=0.94)


def _model(width: int, depth: int, heads: int, head_depth: int, head_width: int, head: HeadKind = "gauss",
           num_classes: int = 1000, grid: tuple[int, ...] = (16, 16), token_dim: int = 16,
           buffer_size: int = 64, **extra: Any) -> ModelConfig:
    """Equal encoder and predictor sizes; defaults: ImageNet 256 through the KL-16 VAE (16x16 tokens
    of 16 channels, 1000 classes, buffer 64)."""
    return ModelConfig(num_classes=num_classes, grid=grid, token_dim=token_dim, buffer_size=buffer_size,
                       encoder_dim=width, encoder_depth=depth, encoder_heads=heads, decoder_dim=width,
                       decoder_depth=depth, decoder_heads=heads, head_depth=head_depth, head_width=head_width,
                       head=head, **extra)




def _digits_tokenizer() -> TokenizerConfig:
    # scikit-learn's 8x8 digits upsampled to 16x16, 1 channel, 4x4 pixel patches -> 4x4 grid of 16-dim tokens
    return TokenizerConfig(kind="patches", image_size=16, channels=1, patch_size=4, scale=1.0)


def _moving_digits_tokenizer(canvas: int = 16, patch_size: int = 4, tubelet: int = 2) -> TokenizerConfig:
    # moving-digits clips: 8 frames of canvas x canvas, 1 channel; by default tubelets of 2 frames x 4x4 pixels -> a
    # (4, c/4, c/4) grid of 32-dim tokens (16: 64 space-time tokens, 12: 36)
    return TokenizerConfig(kind="video", image_size=canvas, channels=1, patch_size=patch_size, scale=1.0,
                           num_frames=8, tubelet=tubelet)


_DIGIT_NAMES = tuple(str(i) for i in range(10))

PRESETS: dict[str, GeneratorConfig] = {
    "djepa-b": GeneratorConfig(_model(768, 12, 12, 6, 1024), _VAE, _REF_SAMPLING,
                               name="djepa-b"),
    "djepa-l": GeneratorConfig(_model(1024, 24, 16, 8, 1280), _VAE, _REF_SAMPLING,
                               name="djepa-l"),
    "djepa-h": GeneratorConfig(_model(1280, 32, 16, 12, 1536), _VAE, _REF_SAMPLING,
                               name="djepa-h"),
    "djepa-b-flow": GeneratorConfig(
        _model(768, 12, 12, 6, 1024, head="flow"), _VAE, _REF_SAMPLING,
        name="djepa-b-flow"),
    # small presets for CPU work and tests (ours)
    "djepa-s": GeneratorConfig(
        _model(192, 4, 4, 3, 256, "gauss", 10, (4, 4), 16, 8),
        _digits_tokenizer(), SamplingConfig(num_steps=16, cfg_scale=2.0, temperature=1.0, head_steps=50),
        name="djepa-s", class_names=tuple(str(i) for i in range(10))),
    "djepa-s-flow": GeneratorConfig(
        _model(192, 4, 4, 3, 256, "flow", 10, (4, 4), 16, 8),
        _digits_tokenizer(), SamplingConfig(num_steps=16, cfg_scale=2.0, temperature=1.0, head_steps=32),
        name="djepa-s-flow", class_names=tuple(str(i) for i in range(10))),
    # the embedded default image model (djepa_core/assets/default_image.safetensors; configs/digits.yaml)
    "djepa-digits": GeneratorConfig(
        _model(128, 4, 4, 3, 256, "flow", 10, (4, 4), 16, 8, diffusion_batch_mul=2),
        # cfg 1.25, 4 AR steps x 16 Euler points: the best Fréchet distance of the sweeps, and the cheapest but one
        # (djepa_core/assets/default_image.json, bench/RESULTS.md "Quality against speed")
        _digits_tokenizer(), SamplingConfig(num_steps=4, cfg_scale=1.25, temperature=1.0, head_steps=16),
        name="djepa-digits", class_names=tuple(str(i) for i in range(10))),
    # 256 tokens (a 16x16 grid of 4x4 patches of 64 px grayscale images), 28.5M params, diffusion head 3x512: the
    # size of the performance study (bench/RESULTS.md "Fast paths"); untrained, for benchmarks of 256-token work
    "djepa-m256": GeneratorConfig(
        _model(384, 6, 6, 3, 512, "gauss", 10, (16, 16), 16, 64),
        TokenizerConfig(kind="patches", image_size=64, channels=1, patch_size=4, scale=1.0),
        SamplingConfig(num_steps=64, cfg_scale=3.0, temperature=1.0, head_steps=100),
        name="djepa-m256", class_names=_DIGIT_NAMES),
    # 64 tokens (8x8 grid, 32 px) at djepa-tiny's width, 64 AR steps of one token each: untrained, for the serving
    # benchmark at the reference's step count (bench/RESULTS.md, issue 11)
    "djepa-tiny64": GeneratorConfig(
        _model(64, 2, 4, 2, 64, "flow", 10, (8, 8), 16, 16),
        TokenizerConfig(kind="patches", image_size=32, channels=1, patch_size=4, scale=1.0),
        SamplingConfig(num_steps=64, cfg_scale=2.0, temperature=1.0, head_steps=8),
        name="djepa-tiny64", class_names=_DIGIT_NAMES),
    "djepa-tiny": GeneratorConfig(
        _model(64, 2, 4, 2, 64, "gauss", 10, (4, 4), 16, 8, diffusion_batch_mul=2),
        _digits_tokenizer(), SamplingConfig(num_steps=4, cfg_scale=2.0, temperature=1.0, head_steps=10),
        name="djepa-tiny", class_names=tuple(str(i) for i in range(10))),
    # the embedded default video model (djepa_core/assets/default_video.safetensors; configs/moving_digits.yaml):
    # one token per frame (8 frames of 12x12 -> a (8, 1, 1) space-time grid of 144-value tokens). The backbone
    # carries the clip's identity and motion from frame to frame; the head draws a whole frame. Patch tokens
    # (below) split a moving digit over tokens at every offset, and three CPU runs of them stayed at a quarter of
    # the real clips' per-frame accuracy where this layout reached 0.6 in 500 steps (bench/train_moving_digits.md)
    "djepa-moving-digits": GeneratorConfig(
        _model(192, 4, 4, 3, 512, "flow", 10, (8, 1, 1), 144, 8, diffusion_batch_mul=4, pos_init="sincos",
               # wider masking than the reference's [0.7, 1]: with 8 tokens, more visible frames teach the
               # predictor to carry the digit across frames
               mask_ratio_min=0.3, mask_ratio_mean=0.7, mask_ratio_std=0.3),
        _moving_digits_tokenizer(12, patch_size=12, tubelet=1),
        SamplingConfig(num_steps=8, cfg_scale=3.0, temperature=1.0, head_steps=32),
        name="djepa-moving-digits", class_names=_DIGIT_NAMES),
    # the previous default: tubelets of 2 frames x 4x4 pixels, a (4, 3, 3) grid of 36 tokens (per-frame accuracy 0.27
    # of real after 2,500 steps; kept to reproduce bench/train_moving_digits.md)
    "djepa-moving-digits-tubelets": GeneratorConfig(
        _model(128, 4, 4, 3, 256, "flow", 10, (4, 3, 3), 32, 8, diffusion_batch_mul=2, pos_init="sincos",
               mask_ratio_min=0.3, mask_ratio_mean=0.7, mask_ratio_std=0.3),
        _moving_digits_tokenizer(12), SamplingConfig(num_steps=36, cfg_scale=3.0, temperature=1.0, head_steps=32),
        name="djepa-moving-digits-tubelets", class_names=_DIGIT_NAMES),
    "djepa-video-tiny": GeneratorConfig(
        _model(32, 1, 2, 1, 32, "flow", 10, (4, 4, 4), 32, 4, diffusion_batch_mul=1, pos_init="sincos"),
        _moving_digits_tokenizer(), SamplingConfig(num_steps=4, cfg_scale=2.0, temperature=1.0, head_steps=4),
        name="djepa-video-tiny", class_names=_DIGIT_NAMES),
}


def get_preset(name: str) -> GeneratorConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
