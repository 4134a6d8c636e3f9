"""One registry of named presets: the reference's D-JEPA-B/L/H and small ones for CPU work.

A preset is a full :class:`GeneratorConfig` (network, tokenizer, sampling defaults). CLIs offer the
registry's keys.
"""

from __future__ import annotations

from djepa_core.config import GeneratorConfig, ModelConfig, SamplingConfig, TokenizerConfig

# ImageNet 256x256 through the KL-16 VAE: 16x16 tokens of 16 channels, 1000 classes, buffer 64.
_IMAGENET = dict(num_classes=1000, grid=(16, 16), token_dim=16, buffer_size=64)
_VAE = TokenizerConfig(kind="vae", image_size=256, channels=3, patch_size=16, scale=0.2325)
# reference sampling: 64 AR steps; temperature 0.94 without guidance (about 0.98 with CFG 3.0)
_REF_SAMPLING = SamplingConfig(num_steps=64, cfg_scale=1.0, temperature=0.94)


def _sizes(width: int, depth: int, heads: int, head_depth: int, head_width: int) -> dict[str, int]:
    return dict(encoder_dim=width, encoder_depth=depth, encoder_heads=heads, decoder_dim=width,
                decoder_depth=depth, decoder_heads=heads, head_depth=head_depth, head_width=head_width)


def _digits_tokenizer() -> TokenizerConfig:
    # scikit-learn's 8x8 digits upsampled to 16x16, 1 channel, 4x4 pixel patches -> 4x4 grid of 16-dim tokens
    return TokenizerConfig(kind="patches", image_size=16, channels=1, patch_size=4, scale=1.0)


PRESETS: dict[str, GeneratorConfig] = {
    "djepa-b": GeneratorConfig(ModelConfig(**_IMAGENET, **_sizes(768, 12, 12, 6, 1024)), _VAE, _REF_SAMPLING,
                               name="djepa-b"),
    "djepa-l": GeneratorConfig(ModelConfig(**_IMAGENET, **_sizes(1024, 24, 16, 8, 1280)), _VAE, _REF_SAMPLING,
                               name="djepa-l"),
    "djepa-h": GeneratorConfig(ModelConfig(**_IMAGENET, **_sizes(1280, 32, 16, 12, 1536)), _VAE, _REF_SAMPLING,
                               name="djepa-h"),
    "djepa-b-flow": GeneratorConfig(
        ModelConfig(**_IMAGENET, **_sizes(768, 12, 12, 6, 1024), head="flow"), _VAE, _REF_SAMPLING,
        name="djepa-b-flow"),
    # small presets for CPU work and tests (ours)
    "djepa-s": GeneratorConfig(
        ModelConfig(num_classes=10, grid=(4, 4), token_dim=16, buffer_size=8,
                    **_sizes(192, 4, 4, 3, 256), head="gauss"),
        _digits_tokenizer(), SamplingConfig(num_steps=16, cfg_scale=2.0, temperature=1.0, head_steps=50),
        name="djepa-s", class_names=tuple(str(i) for i in range(10))),
    "djepa-s-flow": GeneratorConfig(
        ModelConfig(num_classes=10, grid=(4, 4), token_dim=16, buffer_size=8,
                    **_sizes(192, 4, 4, 3, 256), head="flow"),
        _digits_tokenizer(), SamplingConfig(num_steps=16, cfg_scale=2.0, temperature=1.0, head_steps=32),
        name="djepa-s-flow", class_names=tuple(str(i) for i in range(10))),
    "djepa-tiny": GeneratorConfig(
        ModelConfig(num_classes=10, grid=(4, 4), token_dim=16, buffer_size=8,
                    **_sizes(64, 2, 4, 2, 64), head="gauss", diffusion_batch_mul=2),
        _digits_tokenizer(), SamplingConfig(num_steps=4, cfg_scale=2.0, temperature=1.0, head_steps=10),
        name="djepa-tiny", class_names=tuple(str(i) for i in range(10))),
}


def get_preset(name: str) -> GeneratorConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
