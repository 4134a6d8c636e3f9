"""Typed run configuration of `djepa train`: one YAML per run, strict keys, `--set key=value` overrides.

The generator (network, tokenizer, sampling defaults) is a named preset deep-merged with the
`generator` overrides, so a run's YAML can define a model the registry does not hold. The resolved
config (`TrainConfig.to_dict()`) is written to the run folder and into every checkpoint.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from djepa_core.config import GeneratorConfig, from_dict_strict
from djepa_core.presets import get_preset


@dataclass(frozen=True)
class DataConfig:
    """Where training tokens come from.

    kind: `digits` (built-in, in memory), `imagefolder` (ImageNet layout `root/<class>/<image>`),
    `latents` (a cache written by `djepa cache-latents`), `synthetic` (random tokens, for benchmarks);
    video: `moving-digits` (built-in clips) and `clips` (UCF-101 layout `root/<class>/<clip>`).
    """

    kind: Literal["digits", "imagefolder", "latents", "synthetic", "moving-digits", "clips"] = "digits"
    path: str = ""
    split: str = "train"  # digits, moving-digits: train/test/all
    flip: bool = False  # random horizontal flip (imagefolder and latents: the cached flip)
    num_workers: int = 0
    synthetic_size: int = 1024  # samples of the synthetic set


@dataclass(frozen=True)
class OptimConfig:
    """AdamW as the reference: betas (0.9, 0.95), wd 0.02 off norms/biases/embeddings/tokens/heads."""

    lr: float | None = None  # absolute LR; None: blr * global_batch / 256
    blr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.02
    grad_clip: float = 3.0  # 0: no clipping (the norm is still logged)
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr: float = 0.0  # cosine floor


@dataclass(frozen=True)
class LoopConfig:
    steps: int = 1000  # optimizer steps
    batch_size: int = 64  # global batch per optimizer step (all ranks and micro-batches)
    grad_accum: int = 1
    ema_decay: float = 0.9999
    # EMA warm-up: decay_k = min(ema_decay, (1 + k) / (10 + k)) at optimizer step k, so that short runs do not
    # carry their initial weights in the average (off in the reference recipe, on for the small CPU runs)
    ema_warmup: bool = False
    compile: bool = False
    grad_checkpointing: bool = False
    threads: int = 1  # torch CPU threads per process (0: torch's default)


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = 1000  # steps between checkpoints (0: only at the end)
    keep: int = 3  # newest checkpoints kept


@dataclass(frozen=True)
class LogConfig:
    every: int = 50  # steps between log rows
    backend: Literal["csv", "tensorboard", "both"] = "csv"
    progress: bool = True
    sample_every: int = 0  # steps between sample grids (0: only at the end)
    sample_per_class: int = 4
    sample_classes: int = 10  # the first N classes


@dataclass(frozen=True)
class TrainConfig:
    run_dir: str = "runs/run"
    preset: str = "djepa-s"
    generator: dict[str, Any] = field(default_factory=dict)  # deep-merged into the preset's GeneratorConfig
    tokenizer_checkpoint: str = ""  # djepa .safetensors whose `tokenizer.*` tensors (VAE) are loaded
    seed: int = 0
    device: str = "auto"  # auto: cuda:LOCAL_RANK when CUDA is available, else cpu
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    resume: str = "auto"  # auto: the run folder's newest checkpoint if any; none; or a path
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        if self.loop.steps < 1 or self.loop.batch_size < 1 or self.loop.grad_accum < 1:
            raise ValueError("loop.steps, loop.batch_size and loop.grad_accum must be >= 1")
        if self.checkpoint.keep < 1:
            raise ValueError("checkpoint.keep must be >= 1")
        if not 0.0 <= self.loop.ema_decay <= 1.0:
            raise ValueError("loop.ema_decay must be in [0, 1]")
        self.generator_config()  # fail fast on a bad preset or override

    def generator_config(self) -> GeneratorConfig:
        base = get_preset(self.preset).to_dict()
        return GeneratorConfig.from_dict(deep_merge(base, self.generator))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["optim"]["betas"] = list(self.optim.betas)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        sections = {"data": DataConfig, "optim": OptimConfig, "loop": LoopConfig, "checkpoint": CheckpointConfig,
                    "log": LogConfig}
        data = dict(data)
        for key, sub in sections.items():
            if key in data:
                if not isinstance(data[key], dict):
                    raise ValueError(f"config section {key!r} must be a mapping")
                data[key] = from_dict_strict(sub, _check_types(sub, data[key], key), key)
        if "generator" in data and not isinstance(data["generator"], dict):
            raise ValueError("config key 'generator' must be a mapping")
        return from_dict_strict(cls, _check_types(cls, data, "config"), "train config")


def _check_types(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """Coerce/verify scalar values against the field types (YAML 1.1 reads `1e-4` as a string)."""
    hints = typing.get_type_hints(cls)
    out = dict(data)
    for key, value in data.items():
        hint = hints.get(key)
        origin = typing.get_origin(hint)
        if origin is tuple and isinstance(value, list | tuple):  # e.g. betas
            try:
                out[key] = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                raise ValueError(f"{where}.{key}: expected numbers, got {value!r}") from None
            continue
        if origin is not None and origin not in (types.UnionType, typing.Union):
            continue  # Literal (checked where used), dict
        allowed = set(typing.get_args(hint)) or {hint}
        if value is None and type(None) in allowed:
            continue
        if float in allowed and not isinstance(value, bool):
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise ValueError(f"{where}.{key}: expected a number, got {value!r}") from None
            if not isinstance(value, int | float):
                raise ValueError(f"{where}.{key}: expected a number, got {value!r}")
            out[key] = float(value)
        elif int in allowed and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError(f"{where}.{key}: expected an integer, got {value!r}")
        elif bool in allowed and not isinstance(value, bool):
            raise ValueError(f"{where}.{key}: expected true or false, got {value!r}")
        elif str in allowed and not isinstance(value, str):
            raise ValueError(f"{where}.{key}: expected a string, got {value!r}")
    return out


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`a.b=value` (value parsed as YAML) set into a copy of `data`; unknown keys fail at validation."""
    out = deep_merge({}, data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        parts = key.strip().split(".")
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise ValueError(f"--set {key}: {p!r} is not a section")
            node[p] = nxt = dict(nxt)
            node = nxt
        node[parts[-1]] = _yaml().safe_load(raw)
    return out


def _yaml() -> Any:
    """PyYAML, imported when a config is read or written: the training loop itself runs with torch, numpy and
    safetensors only (GPU machines without the rest)."""
    import yaml

    return yaml


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    data: dict[str, Any] = {}
    if path is not None:
        loaded = _yaml().safe_load(Path(path).read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: a run config must be a YAML mapping")
        data = loaded or {}
    return TrainConfig.from_dict(apply_overrides(data, overrides or []))


def dump_config(config: TrainConfig) -> str:
    return _yaml().safe_dump(config.to_dict(), sort_keys=False)
