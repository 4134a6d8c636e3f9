"""Parity of our VAE and image tokenizer with the official tiny-vae fixture.

`run_vae_parity(fixture_dir)` rebuilds the VAE from the fixture's own weight listing (every size is
read from the key listing and shapes; only the nominal resolution 256 is assumed), generates its
weights by the portable recipe (checksums verified), loads them strictly, recomputes every `outputs.*`
tensor of golden.safetensors from its `inputs.*` tensors in float32, eval mode, no grad, on CPU with one
intra-op thread (as the goldens were made), and compares with rtol = atol = 1e-5.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from djepa_core.compat.compare import ParityResult, compare
from djepa_core.compat.vae_recipe import DEFAULT_SEED, recipe_state_dict
from djepa_core.tokenizers.grid import patchify, unpatchify
from djepa_core.tokenizers.image_vae import VAETokenizer
from djepa_core.tokenizers.vae import AutoencoderKL, VAEConfig

RTOL = 1e-5
ATOL = 1e-5
NOMINAL_RESOLUTION = 256


def _shape(shapes: Mapping[str, Sequence[int]], key: str) -> list[int]:
    if key not in shapes:
        raise ValueError(f"weight listing lacks {key!r}; cannot infer the VAE structure")
    return [int(d) for d in shapes[key]]


def _indices(keys: Sequence[str], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys if (m := rx.match(k))})


def config_from_shapes(shapes: Mapping[str, Sequence[int]],
                       resolution: int = NOMINAL_RESOLUTION) -> VAEConfig:
    """Infer a :class:`VAEConfig` from a state-dict listing (key -> shape) in MAR's key layout.

    ch from encoder.conv_in; levels, multipliers and blocks per level from the encoder.down keys;
    attention levels from the `attn` keys of each side (converted to nominal resolutions with
    `resolution`, which the listing cannot reveal); embed_dim from post_quant_conv; variational when
    quant_conv outputs 2 * embed_dim channels.
    """
    keys = list(shapes)
    conv_in = _shape(shapes, "encoder.conv_in.weight")
    ch, in_channels = conv_in[0], conv_in[1]
    levels = _indices(keys, r"^encoder\.down\.(\d+)\.")
    if levels != list(range(len(levels))) or not levels:
        raise ValueError(f"encoder levels are not 0..n-1: {levels}")
    ch_mult = []
    for i in levels:
        out_ch = _shape(shapes, f"encoder.down.{i}.block.0.conv1.weight")[0]
        if out_ch % ch:
            raise ValueError(f"level {i} width {out_ch} is not a multiple of ch={ch}")
        ch_mult.append(out_ch // ch)
    num_res_blocks = len(_indices(keys, r"^encoder\.down\.0\.block\.(\d+)\."))
    enc_attn = tuple(resolution // 2**i for i in levels if any(
        k.startswith(f"encoder.down.{i}.attn.") for k in keys))
    dec_levels = _indices(keys, r"^decoder\.up\.(\d+)\.")
    dec_attn = tuple(sorted((resolution // 2**i for i in dec_levels if any(
        k.startswith(f"decoder.up.{i}.attn.") for k in keys)), reverse=True))
    embed_dim = _shape(shapes, "post_quant_conv.weight")[0]
    quant_out = _shape(shapes, "quant_conv.weight")[0]
    out_channels = _shape(shapes, "decoder.conv_out.weight")[0]
    return VAEConfig(embed_dim=embed_dim, ch=ch, ch_mult=tuple(ch_mult), num_res_blocks=num_res_blocks,
                     resolution=resolution, encoder_attn_resolutions=enc_attn,
                     decoder_attn_resolutions=dec_attn, in_channels=in_channels,
                     out_channels=out_channels, use_variational=quant_out == 2 * embed_dim)


def build_fixture_vae(golden: Mapping[str, Any]) -> AutoencoderKL:
    """The fixture's VAE with recipe weights, loaded strictly, float32, eval mode."""
    weights = golden["weights"]
    config = config_from_shapes({k: v["shape"] for k, v in weights.items()})
    seed = int(golden.get("fixture_seed", DEFAULT_SEED))
    state = recipe_state_dict(weights, seed=seed)
    vae = AutoencoderKL(config).float().eval()
    vae.load_state_dict(state, strict=True)
    return vae


def _recipes(vae: AutoencoderKL, tok: VAETokenizer,
             inputs: Mapping[str, torch.Tensor]) -> dict[str, Callable[[], torch.Tensor]]:
    """How each known output is recomputed from the inputs."""
    image = inputs.get("inputs.image")
    latents = inputs.get("inputs.latents")
    scaled = inputs.get("inputs.scaled_tokens")

    def need(t: torch.Tensor | None, name: str) -> torch.Tensor:
        if t is None:
            raise KeyError(f"input {name} missing from golden.safetensors")
        return t

    def posterior() -> Any:
        return vae.encode(need(image, "inputs.image"))

    return {
        "outputs.encoder_output_h": lambda: vae.encoder(need(image, "inputs.image")),
        "outputs.moments": lambda: vae.encode_moments(need(image, "inputs.image")),
        "outputs.posterior_mean": lambda: posterior().mean,
        "outputs.posterior_logvar": lambda: posterior().logvar,
        "outputs.posterior_std": lambda: posterior().std,
        "outputs.decoded_latents": lambda: vae.decode(need(latents, "inputs.latents")),
        # Through the tokenizer: tokens of the posterior mean, back on the [B, E, h, w] grid.
        "outputs.scaled_tokens_from_mean": lambda: unpatchify(
            tok.encode(need(image, "inputs.image"), sample=False), tok.grid, tok.patch_size),
        "outputs.decoded_from_scaled_tokens": lambda: tok.decode(
            patchify(need(scaled, "inputs.scaled_tokens"), tok.patch_size)),
    }


def run_vae_parity(fixture_dir: Path, num_threads: int | None = 1) -> list[ParityResult]:
    """One ParityResult per `outputs.*` tensor listed in golden.json (in listing order).

    An output without a recipe here gets `error="not recomputed"`; one whose recomputation raises gets
    the exception text. `num_threads` (default 1, the goldens' setting) is applied for the run and the
    previous torch thread count restored afterwards; None leaves it alone.
    """
    fixture_dir = Path(fixture_dir)
    golden_meta = json.loads((fixture_dir / "golden.json").read_text())
    tensors = load_file(str(fixture_dir / "golden.safetensors"), device="cpu")
    listed = [k for k in golden_meta.get("tensors", {}) if k.startswith("outputs.")]
    missing_stored = [k for k in tensors if k.startswith("outputs.") and k not in listed]
    names = listed + missing_stored  # never drop a stored output that the JSON forgot to list

    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        vae = build_fixture_vae(golden_meta)
        image = tensors.get("inputs.image")
        size = int(image.shape[-1]) if image is not None else vae.config.resolution
        tok = VAETokenizer(vae, image_size=size)
        inputs = {k: v.float() for k, v in tensors.items() if k.startswith("inputs.")}
        recipes = _recipes(vae, tok, inputs)
        results: list[ParityResult] = []
        with torch.no_grad():
            for name in names:
                golden = tensors.get(name)
                if golden is None:
                    results.append(ParityResult(name, float("inf"), float("inf"), RTOL, ATOL,
                                                error="golden tensor missing from golden.safetensors"))
                    continue
                recipe = recipes.get(name)
                if recipe is None:
                    results.append(ParityResult(name, float("inf"), float("inf"), RTOL, ATOL,
                                                error="not recomputed"))
                    continue
                try:
                    ours = recipe()
                except (KeyError, ValueError, RuntimeError) as exc:
                    results.append(ParityResult(name, float("inf"), float("inf"), RTOL, ATOL,
                                                error=f"{type(exc).__name__}: {exc}"))
                    continue
                results.append(compare(name, ours, golden.float(), rtol=RTOL, atol=ATOL))
        return results
    finally:
        if num_threads is not None:
            torch.set_num_threads(previous)
