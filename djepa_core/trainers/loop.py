"""The training loop: a thin loop around `DJEPA.loss(batch)` for 1 to N processes.

The model knows nothing of DDP, AMP or EMA; this file owns them. One optimizer step consumes
`loop.grad_accum` micro-batches per rank (global batch = micro x accum x world). bf16 autocast on
CUDA, fp32 on CPU. The loss is checked every micro-batch: a non-finite value stops the run at once.
Everything is written by rank 0 only.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from djepa_core.config import GeneratorConfig
from djepa_core.data.sampler import ResumableBatchSampler
from djepa_core.data.sources import Source, build_source
from djepa_core.models.djepa import DJEPA, Batch
from djepa_core.models.ema import EMA
from djepa_core.tokenizers.factory import build_any_tokenizer
from djepa_core.tokenizers.image_vae import VAETokenizer
from djepa_core.trainers import state as ckpt
from djepa_core.trainers.config import TrainConfig, dump_config
from djepa_core.trainers.distributed import DistInfo, all_mean, setup
from djepa_core.trainers.logger import MetricsLogger, truncate_csv
from djepa_core.trainers.optim import build_optimizer
from djepa_core.trainers.schedule import lr_at


class NonFiniteLossError(FloatingPointError):
    pass


class LossModule(nn.Module):
    """`forward` = `model.loss`, so DDP sees a forward call (its gradient hooks need one)."""

    def __init__(self, model: DJEPA) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor, target: DJEPA | None,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        out = self.model.loss(Batch(tokens, labels), target=target, generator=generator)
        return out.total, out.denoise, out.jepa, out.mask_ratio


def load_tokenizer_weights(tokenizer: nn.Module, path: str) -> None:
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        sd = {k[len("tokenizer."):]: f.get_tensor(k) for k in f.keys() if k.startswith("tokenizer.")}  # noqa: SIM118
    if not sd:
        raise ValueError(f"{path}: holds no `tokenizer.*` tensors")
    tokenizer.load_state_dict(sd)


class Trainer:
    def __init__(self, config: TrainConfig, dist_info: DistInfo | None = None) -> None:
        self.config = config
        cfg = config
        if cfg.loop.threads > 0:
            torch.set_num_threads(cfg.loop.threads)
        self.dist = dist_info or setup(cfg.device)
        self.device = self.dist.device
        self.run_dir = Path(cfg.run_dir)
        self.gen_config: GeneratorConfig = cfg.generator_config()
        if cfg.loop.grad_checkpointing:
            self.gen_config = GeneratorConfig.from_dict(
                {**self.gen_config.to_dict(), "model": {**self.gen_config.model.to_dict(), "grad_checkpointing": True}})
        world, accum = self.dist.world, cfg.loop.grad_accum
        if cfg.loop.batch_size % (world * accum):
            raise ValueError(f"loop.batch_size {cfg.loop.batch_size} is not divisible by world size {world} x "
                             f"grad_accum {accum}")
        self.micro_batch = cfg.loop.batch_size // (world * accum)
        self.base_lr = cfg.optim.lr if cfg.optim.lr is not None else cfg.optim.blr * cfg.loop.batch_size / 256
        precision = cfg.precision if cfg.precision != "auto" else ("bf16" if self.device.type == "cuda" else "fp32")
        self.autocast = precision == "bf16"

        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        self.model = DJEPA(self.gen_config.model).to(self.device)
        self.ema = EMA(self.model, cfg.loop.ema_decay)
        self.tokenizer = build_any_tokenizer(self.gen_config.tokenizer)
        if cfg.tokenizer_checkpoint:
            load_tokenizer_weights(self.tokenizer, cfg.tokenizer_checkpoint)
        self.tokenizer.to(self.device)
        self.optimizer = build_optimizer(self.model, self.base_lr, cfg.optim.betas, cfg.optim.weight_decay,
                                         self.device)
        # per-rank stream for masks, label drop and head noise; dropout uses the global torch RNG
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed * 9973 + self.dist.rank)
        torch.manual_seed(cfg.seed * 7919 + self.dist.rank)
        loss_module: nn.Module = LossModule(self.model)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            loss_module = DistributedDataParallel(loss_module, device_ids=ids)
        self.loss_module = loss_module
        self.step_fn: nn.Module | Any = torch.compile(loss_module) if cfg.loop.compile else loss_module
        self.source: Source = build_source(cfg.data.kind, cfg.data.path, cfg.data.split, self.gen_config, cfg.seed,
                                           cfg.data.synthetic_size)
        self.step = 0
        self.consumed = 0  # micro-batches this rank has consumed
        self.elapsed = 0.0  # training seconds over all sessions of the run
        if cfg.resume != "none":
            path = ckpt.latest_checkpoint(self.run_dir) if cfg.resume == "auto" else Path(cfg.resume)
            if path is not None:
                self.load(path)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        rng = ckpt.rng_state(self.generator, self.device)
        rngs: list[Any] = [rng]
        if self.dist.enabled:
            rngs = [None] * self.dist.world
            dist.all_gather_object(rngs, {k: v.cpu() for k, v in rng.items()})
        return {
            "format": "djepa-train/1",
            "config": self.config.to_dict(),
            "generator_config": self.gen_config.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"step": self.step, "base_lr": self.base_lr},
            "step": self.step,
            "consumed": self.consumed,
            "elapsed": self.elapsed,
            "world": self.dist.world,
            "rng": rngs,
        }

    def load(self, path: str | Path) -> None:
        state = ckpt.load_checkpoint(path, map_location=self.device)
        if state["world"] != self.dist.world:
            raise ValueError(f"{path} was written by {state['world']} process(es); resume with the same number "
                             f"(this run has {self.dist.world})")
        # compared as configs, not dicts: a checkpoint written before a field with a default existed still resumes
        if GeneratorConfig.from_dict(state["generator_config"]) != self.gen_config:
            raise ValueError(f"{path}: its model config differs from this run's")
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.consumed, self.elapsed = int(state["step"]), int(state["consumed"]), float(state["elapsed"])
        ckpt.set_rng_state(state["rng"][self.dist.rank], self.generator, self.device)

    def save_checkpoint(self) -> Path | None:
        state = self.state_dict()  # collective under DDP: every rank calls it
        if not self.dist.is_main:
            return None
        path = ckpt.atomic_torch_save(state, ckpt.checkpoint_path(self.run_dir, self.step))
        ckpt.prune_checkpoints(self.run_dir, self.config.checkpoint.keep)
        return path

    def image_generator(self) -> Any:
        """The EMA weights as an ImageGenerator, or a VideoGenerator for a video tokenizer (a deep copy, on this
        device)."""
        import copy

        from djepa_core.pipeline import ImageGenerator
        from djepa_core.tokenizers.video import VideoPatchTokenizer
        from djepa_core.video_pipeline import VideoGenerator

        model = typing.cast(DJEPA, copy.deepcopy(self.ema.model))
        if isinstance(self.tokenizer, VideoPatchTokenizer):
            return VideoGenerator(self.gen_config, model, self.tokenizer)
        return ImageGenerator(self.gen_config, model, self.tokenizer)

    def export(self, path: str | Path) -> Path:
        from djepa_core.checkpoint import save_generator

        gen = self.image_generator()
        return save_generator(path, gen, {"train_step": str(self.step),
                                          "train_config": json.dumps(self.config.to_dict())})

    def write_samples(self) -> Path:
        from djepa_core.images import grid_image, save_png

        gen = self.image_generator()
        log = self.config.log
        classes = list(range(min(log.sample_classes, self.gen_config.model.num_classes)))
        labels = [c for c in classes for _ in range(log.sample_per_class)]
        images = gen.generate(labels, seeds=list(range(len(labels))))
        ncols = log.sample_per_class
        if images.dim() == 5:  # clips [N, T, C, S, S]: one row per clip, one column per frame
            ncols = images.shape[1]
            images = images.flatten(0, 1)
        return save_png(grid_image(images.float().cpu(), ncols=ncols),
                        self.run_dir / "samples" / f"step-{self.step:08d}.png")

    # ------------------------------------------------------------------ data
    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        sampler = ResumableBatchSampler(len(self.source), self.micro_batch, seed=self.config.seed,
                                        rank=self.dist.rank, world=self.dist.world, flip=self.config.data.flip,
                                        start=self.consumed)
        loader: torch.utils.data.DataLoader[Any] = torch.utils.data.DataLoader(
            self.source, batch_sampler=sampler,  # type: ignore[arg-type]
                                             num_workers=self.config.data.num_workers,
                                             pin_memory=self.device.type == "cuda",
                                             persistent_workers=self.config.data.num_workers > 0,
                                             # its own generator: making the iterator must not draw from
                                             # the global RNG (dropout's stream; exact resume)
                                             generator=torch.Generator().manual_seed(self.config.seed))
        yield from loader

    def to_tokens(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        kind = self.source.kind
        with torch.no_grad():
            if kind == "tokens":
                return x.float()
            if kind == "moments":
                if not isinstance(self.tokenizer, VAETokenizer):
                    raise ValueError("a latent cache needs a VAE tokenizer (generator.tokenizer.kind: vae)")
                return self.tokenizer.tokens_from_moments(x, self.generator)
            return self.tokenizer.encode(x, generator=self.generator)

    # ------------------------------------------------------------------ loop
    def train(self, max_steps: int | None = None) -> dict[str, float]:
        """Train to `loop.steps` (or stop after `max_steps` more steps, checkpointing there: a time slice)."""
        cfg = self.config
        total = cfg.loop.steps
        stop = total if max_steps is None else min(total, self.step + max_steps)
        main = self.dist.is_main
        logger = None
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(dump_config(cfg))
            if self.step > 0:
                truncate_csv(self.run_dir / "metrics.csv", self.step)
            logger = MetricsLogger(self.run_dir, cfg.log.backend)
        from tqdm import tqdm

        bar = tqdm(total=total, initial=self.step, desc="train", unit="step", dynamic_ncols=True,
                   disable=not (main and cfg.log.progress), file=sys.stderr)
        data = self.batches()
        self.model.train()
        last: dict[str, float] = {}
        window_images, window_t0 = 0, time.perf_counter()
        sums = torch.zeros(4, device=self.device)  # total, denoise, jepa, grad norm over the log window
        window_steps = 0
        try:
            while self.step < stop:
                t_step = time.perf_counter()
                lr = lr_at(self.step, self.base_lr, cfg.optim.warmup_steps, total, cfg.optim.schedule, cfg.optim.min_lr)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                mask_ratio = 0.0
                for micro in range(cfg.loop.grad_accum):
                    x, y = next(data)
                    self.consumed += 1
                    tokens, labels = self.to_tokens(x), y.to(self.device)
                    sync = micro == cfg.loop.grad_accum - 1
                    no_sync = getattr(self.loss_module, "no_sync", None)
                    ctx = no_sync() if (no_sync is not None and not sync) else contextlib.nullcontext()
                    with ctx:
                        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                            loss, denoise, jepa, mask_ratio = self.step_fn(tokens, labels, self.ema.model,
                                                                           self.generator)
                        if not bool(torch.isfinite(loss)):
                            raise NonFiniteLossError(f"non-finite loss {float(loss.detach())} at step {self.step} "
                                                     f"(micro-batch {micro}, rank {self.dist.rank}); stopping")
                        (loss / cfg.loop.grad_accum).backward()
                    sums[:3] += torch.stack([loss.detach(), denoise.detach(), jepa.detach()]).float() / \
                        cfg.loop.grad_accum
                clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else math.inf
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
                sums[3] += grad_norm.detach().float()
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                decay = cfg.loop.ema_decay
                if cfg.loop.ema_warmup:
                    decay = min(decay, (1 + self.step) / (10 + self.step))
                self.ema.update(self.model, decay)
                self.step += 1
                window_steps += 1
                window_images += cfg.loop.batch_size
                self.elapsed += time.perf_counter() - t_step
                bar.update(1)
                if self.step % cfg.log.every == 0 or self.step == total:
                    means = all_mean(sums / window_steps, self.dist).tolist()
                    dt = time.perf_counter() - window_t0
                    epoch = self.consumed / max(1, len(self.source) // (self.dist.world * self.micro_batch))
                    last = {"step": self.step, "epoch": round(epoch, 3), "lr": lr, "loss": means[0],
                            "denoise": means[1], "jepa": means[2], "grad_norm": means[3],
                            "images_per_s": window_images / dt, "mask_ratio": mask_ratio,
                            "elapsed_s": round(self.elapsed, 1)}
                    bar.set_postfix(loss=f"{means[0]:.4f}", img_s=f"{window_images / dt:.0f}")
                    if logger is not None:
                        logger.log(last)
                    sums.zero_()
                    window_steps, window_images, window_t0 = 0, 0, time.perf_counter()
                every = cfg.log.sample_every
                if main and every > 0 and self.step % every == 0 and self.step < total:
                    self.write_samples()
                    self.model.train()
                if cfg.checkpoint.every > 0 and self.step % cfg.checkpoint.every == 0 and self.step < total:
                    self.save_checkpoint()
            self.save_checkpoint()
            if main and self.step == total:
                self.export(self.run_dir / "model.safetensors")
                self.write_samples()
        finally:
            bar.close()
            if logger is not None:
                logger.close()
        return last


def train(config: TrainConfig, max_steps: int | None = None) -> dict[str, float]:
    """Run (or resume) `config`; with torchrun, every process calls this."""
    from djepa_core.trainers.distributed import teardown

    try:
        return Trainer(config).train(max_steps)
    finally:
        teardown()

