"""Our checkpoint format: one safetensors file holding the generator's weights and its resolved config.

Tensors: `model.*` (the D-JEPA network, EMA weights for serving) and `tokenizer.*` (the VAE, when
the tokenizer has weights); float32, or float16 when written with `half=True` (shipped assets: half
the bytes; loading casts them back into the float32 module, so the arithmetic stays float32). Header
metadata: `format` = "djepa/1" and `config` = the
:class:`GeneratorConfig` as JSON, so one file rebuilds the exact generator. No pickle anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from djepa_core.compat.state_dict import load_strict
from djepa_core.config import GeneratorConfig
from djepa_core.models.djepa import DJEPA
from djepa_core.pipeline import ImageGenerator
from djepa_core.tokenizers.factory import build_any_tokenizer
from djepa_core.tokenizers.video import VideoPatchTokenizer as VideoTokenizer
from djepa_core.video_pipeline import VideoGenerator

FORMAT = "djepa/1"


def save_generator(path: str | Path, gen: ImageGenerator | VideoGenerator,
                   extra_metadata: dict[str, str] | None = None, half: bool = False) -> Path:
    """Write `gen` to `path` atomically (a temporary file renamed into place); `half`: float tensors as float16."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def store(v: torch.Tensor) -> torch.Tensor:
        v = v.detach().cpu()
        return (v.half() if half and v.is_floating_point() else v).contiguous()

    tensors = {f"model.{k}": store(v) for k, v in gen.model.state_dict().items()}
    tensors.update({f"tokenizer.{k}": store(v) for k, v in gen.tokenizer.state_dict().items()})
    meta = {"format": FORMAT, "config": json.dumps(gen.config.to_dict())}
    meta.update(extra_metadata or {})
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.chmod(0o644)  # a model file, readable by the serving user
    tmp.replace(path)
    return path


def read_config(path: str | Path) -> GeneratorConfig:
    """The GeneratorConfig stored in a checkpoint's header (reads no tensor)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error type for non-safetensors files
        raise ValueError(f"{path}: not a safetensors file ({e}); reference .pth files are imported with "
                         "`djepa convert`") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a djepa checkpoint (format {meta.get('format')!r}, expected {FORMAT!r}); "
                         "reference .pth files are imported with `djepa convert`")
    return GeneratorConfig.from_dict(json.loads(meta["config"]))


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> ImageGenerator:
    """Rebuild the image generator stored in `path` (strict: every key and shape must match its config)."""
    gen = load_any_generator(path, device)
    if isinstance(gen, VideoGenerator):
        raise ValueError(f"{path} holds a video model; load it with load_video_generator")
    return gen


def load_video_generator(path: str | Path, device: torch.device | str = "cpu") -> VideoGenerator:
    """Rebuild the video generator stored in `path` (strict, as :func:`load_generator`)."""
    gen = load_any_generator(path, device)
    if not isinstance(gen, VideoGenerator):
        raise ValueError(f"{path} holds an image model, not a video model (tokenizer kind "
                         f"{gen.config.tokenizer.kind!r})")
    return gen


def load_any_generator(path: str | Path, device: torch.device | str = "cpu") -> ImageGenerator | VideoGenerator:
    """Rebuild the image or video generator stored in `path`, whichever its tokenizer config names."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    config = read_config(path)
    model, tokenizer = DJEPA(config.model), build_any_tokenizer(config.tokenizer)
    model_sd: dict[str, torch.Tensor] = {}
    tok_sd: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
            if key.startswith("model."):
                model_sd[key[len("model."):]] = f.get_tensor(key)
            elif key.startswith("tokenizer."):
                tok_sd[key[len("tokenizer."):]] = f.get_tensor(key)
            else:
                raise ValueError(f"{path}: unexpected tensor {key!r}")
    load_strict(model, model_sd, f"{path.name} (model)", float32=True)
    load_strict(tokenizer, tok_sd, f"{path.name} (tokenizer)", float32=True)
    if isinstance(tokenizer, VideoTokenizer):
        return VideoGenerator(config, model.eval(), tokenizer).to(device)
    return ImageGenerator(config, model.eval(), tokenizer).to(device)
