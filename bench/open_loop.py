"""Continuous against static batching in-process: open-loop Poisson arrivals, no Ray, no HTTP (issue 11).

For machines without the service stack (the GPU machine has torch, numpy and safetensors only, no Ray): the
step scheduler the image replicas run (`service/scheduler.py`, stdlib + torch) over a djepa_core engine, against a
static batcher that batches as Ray Serve's `@serve.batch` does (a batch closes `--wait` s after its first request
or at `--batch` requests, and is formed while the previous one runs; one batch runs at a time). Both end with the
tokenizer's decode (no PNG). First the static capacity is measured (images/s of one full batch of `--batch`), then
requests arrive at `--loads` fractions of it (or at `--rates`), `--seconds` each, modes alternating per round;
latency per request from its arrival to its answer, throughput = answered / (last answer - first arrival).

    .venv/bin/python bench/open_loop.py                                     # djepa-tiny64 on the CPU
    python bench/open_loop.py --preset djepa-b --device cuda --precision bf16 --batch 64 --loads 0.25,0.5
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from djepa_core.fastpath import FastPath
from djepa_core.pipeline import ImageGenerator
from djepa_core.presets import get_preset
from djepa_core.samplers import stepwise
from djepa_core.samplers.masked_ar import HeadSampler, SampleSettings
from service.scheduler import StepScheduler
from service.types import ImageItem


class TokenEngine:
    """The scheduler's `StepEngine` over an ImageGenerator; outputs are decoded images (tensors), no PNG."""

    def __init__(self, gen: ImageGenerator, settings: SampleSettings) -> None:
        self.gen, self.settings = gen, settings
        self.samplers: dict[tuple[object, ...], HeadSampler] = {}

    def start(self, item: ImageItem) -> stepwise.ARState:
        return stepwise.start(self.gen.model, item.class_id, item.seed, self.settings)

    def advance(self, states: Sequence[stepwise.ARState]) -> list[stepwise.ARState]:
        with self.gen.fast.autocast(self.gen.device):
            return stepwise.advance(self.gen.model, states, self.samplers)

    def is_done(self, state: stepwise.ARState) -> bool:
        return stepwise.finished(state)

    def step_of(self, state: stepwise.ARState) -> int:
        return state.step

    @torch.no_grad()
    def outputs(self, items: Sequence[ImageItem], states: Sequence[stepwise.ARState]) -> list[Any]:
        images = self.gen.tokenizer.decode(torch.stack([s.tokens for s in states])).cpu()
        return list(images)

    def preview(self, state: stepwise.ARState) -> bytes:
        raise NotImplementedError("no previews in this benchmark")


class StaticBatcher:
    """`@serve.batch` semantics: a batch closes `wait` s after its first request (or when full) and is formed
    while the previous batch runs; batches run one at a time, each one `ImageGenerator.generate` call."""

    def __init__(self, gen: ImageGenerator, settings: SampleSettings, max_batch: int, wait: float) -> None:
        self.gen, self.settings, self.max_batch, self.wait = gen, settings, max_batch, wait
        self.queue: asyncio.Queue[tuple[ImageItem, asyncio.Future[Any]]] = asyncio.Queue()
        self.running = asyncio.Semaphore(1)
        self.tasks: set[asyncio.Task[None]] = set()
        self.loop_task: asyncio.Task[None] | None = None

    async def submit(self, item: ImageItem) -> Any:
        if self.loop_task is None:
            self.loop_task = asyncio.get_running_loop().create_task(self._form_batches())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((item, future))
        return await future

    async def _form_batches(self) -> None:
        while True:
            batch = [await self.queue.get()]
            closes = time.perf_counter() + self.wait
            while len(batch) < self.max_batch:
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), max(0.0, closes - time.perf_counter())))
                except TimeoutError:
                    break
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _run(self, batch: list[tuple[ImageItem, asyncio.Future[Any]]]) -> None:
        async with self.running:
            items = [item for item, _ in batch]
            images = await asyncio.to_thread(self._generate, items)
        for (_, future), image in zip(batch, images, strict=True):
            future.set_result(image)

    def _generate(self, items: list[ImageItem]) -> list[Any]:
        images = self.gen.generate([it.class_id for it in items], seeds=[it.seed for it in items],
                                   settings=self.settings)
        return list(images.cpu())

    async def close(self) -> None:
        if self.loop_task is not None:
            self.loop_task.cancel()


@dataclass
class Level:
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds > 0 else 0.0

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))] if xs else float("nan")


async def poisson(submit: Any, rate: float, seconds: float, seed: int, classes: int) -> Level:
    """Requests at exponential gaps (mean 1/rate) for `seconds`, whatever the answers."""
    rng = random.Random(seed)
    level = Level()
    begin = time.perf_counter()
    last = begin
    due = begin

    async def one(i: int, sent: float) -> None:
        nonlocal last
        await submit(ImageItem(i % classes, seed * 100003 + i, 0, 0.0, 0.0))
        now = time.perf_counter()
        level.latencies.append(now - sent)
        last = max(last, now)

    tasks = []
    i = 0
    while True:
        due += rng.expovariate(rate)
        if due - begin > seconds:
            break
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.ensure_future(one(i, due)))
        i += 1
    await asyncio.gather(*tasks)
    level.seconds = last - begin
    return level


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="djepa-tiny64", help="untrained preset (default: djepa-tiny64, 64 AR steps)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as the replicas)")
    p.add_argument("--batch", type=int, default=32, help="static max batch size and continuous max in flight")
    p.add_argument("--wait", type=float, default=0.25, help="static batch wait, s (the deploy default 0.25)")
    p.add_argument("--loads", default="0.25,0.5", help="arrival rates as fractions of static's full-batch capacity")
    p.add_argument("--rates", default="", help="arrival rates in requests/s instead of --loads")
    p.add_argument("--seconds", type=float, default=30.0, help="arrivals per rate, s")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds of both modes (medians reported)")
    args = p.parse_args()
    if args.batch < 1 or args.wait < 0 or args.seconds <= 0 or args.rounds < 1:
        p.error("need --batch >= 1, --wait >= 0, --seconds > 0, --rounds >= 1")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    torch.set_num_threads(args.threads)
    gen = ImageGenerator.from_config(get_preset(args.preset)).to(device).accelerate(FastPath(precision=args.precision))
    settings = gen.settings()
    classes = gen.config.model.num_classes

    full = [i % classes for i in range(args.batch)]
    gen.generate(full, seeds=list(range(args.batch)), settings=settings)  # warm-up
    times = []
    for _ in range(2):
        t = time.perf_counter()
        gen.generate(full, seeds=list(range(args.batch)), settings=settings)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    capacity = args.batch / min(times)
    t = time.perf_counter()
    gen.generate([0], seeds=[0], settings=settings)
    if device.type == "cuda":
        torch.cuda.synchronize()
    alone = time.perf_counter() - t
    rates = ([float(r) for r in args.rates.split(",") if r.strip()] if args.rates
             else [round(capacity * float(x), 2) for x in args.loads.split(",") if x.strip()])
    print(f"{args.preset} on {device} ({args.precision}), {settings.num_steps} AR steps, cfg {settings.cfg_scale}: "
          f"static full batch of {args.batch}: {capacity:.2f} img/s; one image alone {alone:.3f} s; rates {rates}",
          flush=True)

    results: dict[tuple[str, float], list[Level]] = {}

    async def sweep(mode: str, rnd: int) -> None:
        if mode == "static":
            batcher = StaticBatcher(gen, settings, args.batch, args.wait)
            submit = batcher.submit
        else:
            sched = StepScheduler(TokenEngine(gen, settings), max_in_flight=args.batch, max_waiting=1 << 20)
            submit = sched.submit
        for i, rate in enumerate(rates):
            level = await poisson(submit, rate, args.seconds, 1000 * rnd + i, classes)
            results.setdefault((mode, rate), []).append(level)
            print(f"round {rnd + 1} {mode:10s} rate {rate:6.2f}/s: {level.throughput:6.2f} img/s  "
                  f"p50 {level.pct(50):.3f}s  p99 {level.pct(99):.3f}s  ({len(level.latencies)} images)", flush=True)
        if mode == "static":
            await batcher.close()

    with torch.no_grad():
        for rnd in range(args.rounds):
            for mode in ("static", "continuous"):
                asyncio.run(sweep(mode, rnd))

    def mid(levels: list[Level], what: str) -> float:
        return statistics.median(lv.throughput if what == "tput" else lv.pct(float(what)) for lv in levels)

    print(f"\n{args.preset} on {device} ({args.precision}), static batch {args.batch} / wait {args.wait} s against "
          f"continuous max_in_flight {args.batch}; {args.seconds:g} s of Poisson arrivals per rate"
          + (f", medians of {args.rounds} alternating rounds" if args.rounds > 1 else "") + "\n")
    print("| rate req/s | load | static img/s | p50 s | p99 s | continuous img/s | p50 s | p99 s | p99 static / "
          "continuous |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rate in rates:
        s, c = results[("static", rate)], results[("continuous", rate)]
        print(f"| {rate:g} | {rate / capacity:.0%} | {mid(s, 'tput'):.2f} | {mid(s, '50'):.3f} | {mid(s, '99'):.3f} | "
              f"{mid(c, 'tput'):.2f} | {mid(c, '50'):.3f} | {mid(c, '99'):.3f} | {mid(s, '99') / mid(c, '99'):.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
