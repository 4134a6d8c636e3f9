"""`djepa convert`: a reference D-JEPA checkpoint plus MAR's VAE -> one djepa safetensors file."""

from __future__ import annotations

from pathlib import Path

from djepa_core.checkpoint import save_generator
from djepa_core.compat.mar_vae import load_mar_vae, read_state_dict
from djepa_core.compat.reference import (
    args_of,
    config_from_reference,
    infer_reference_args,
    pick_weights,
)
from djepa_core.compat.state_dict import load_strict, read_container
from djepa_core.compat.vae_parity import config_from_shapes
from djepa_core.config import GeneratorConfig, TokenizerConfig
from djepa_core.models.djepa import DJEPA
from djepa_core.pipeline import ImageGenerator
from djepa_core.presets import PRESETS
from djepa_core.tokenizers.image_vae import KL16_MAR_SCALE, VAETokenizer


def import_reference(checkpoint: str | Path, vae: str | Path, which: str = "model_ema",
                     preset: str | None = None, name: str | None = None) -> ImageGenerator:
    """Build our generator from the reference's files, refusing any key or shape mismatch."""
    ckpt = read_container(checkpoint)
    state = pick_weights(ckpt, which)
    args = args_of(ckpt)
    if args is not None:
        model_cfg = config_from_reference(args)
    elif preset is not None:
        model_cfg = PRESETS[preset].model
    else:
        model_cfg = config_from_reference(infer_reference_args(state))
    if not any(k.startswith("jepaloss.") for k in state) and model_cfg.jepa_weight > 0:
        model_cfg = model_cfg.replace(jepa_weight=0.0)  # trained without the JEPA loss
    model = DJEPA(model_cfg)
    load_strict(model, state, f"{Path(checkpoint).name} ({which})")

    vae_state = read_state_dict(vae)
    vae_cfg = config_from_shapes({k: list(v.shape) for k, v in vae_state.items()})
    vae_model = load_mar_vae(vae, vae_cfg)
    stride = vae_model.downsample_factor
    patch = round((model_cfg.token_dim / vae_cfg.embed_dim) ** 0.5)  # latent pixels per token side
    if patch * patch * vae_cfg.embed_dim != model_cfg.token_dim:
        raise ValueError(f"model tokens of {model_cfg.token_dim} channels do not fit a VAE with "
                         f"{vae_cfg.embed_dim} latent channels")
    side = model_cfg.grid[0]
    tok_cfg = TokenizerConfig(kind="vae", image_size=side * stride * patch, channels=3, patch_size=stride * patch,
                              scale=KL16_MAR_SCALE, vae=vae_cfg.to_dict())
    tokenizer = VAETokenizer(vae_model, image_size=tok_cfg.image_size, scale=tok_cfg.scale, patch_size=patch)
    base = PRESETS.get(preset or "djepa-b")
    sampling = base.sampling if base is not None else GeneratorConfig().sampling
    config = GeneratorConfig(model=model_cfg, tokenizer=tok_cfg, sampling=sampling,
                             name=name or Path(checkpoint).stem)
    return ImageGenerator(config, model.eval(), tokenizer)


def convert_reference(checkpoint: str | Path, vae: str | Path, out: str | Path, which: str = "model_ema",
                      preset: str | None = None, name: str | None = None) -> Path:
    gen = import_reference(checkpoint, vae, which, preset, name)
    return save_generator(out, gen, {"source": Path(checkpoint).name, "weights": which})
