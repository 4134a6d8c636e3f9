"""Closed-loop load on the image service over loopback, with batching on and off, against the engine alone.

For each concurrency C in the sweep, C clients each send a request, wait for its answer, and send the
next, until the level's time or request budget is spent. Reported per level: throughput (images/s)
and p50/p95/p99 latency. Batching off is the same deployment reconfigured live to max_batch_size=1.
The engine's own batched throughput (no Ray, no HTTP) is measured in this process first.

    .venv/bin/python bench/serve_load.py --out /tmp/table.md     # about 5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import torch

from service import ray_local
from service.config import AppConfig, EngineConfig
from service.engine import TorchImageEngine
from service.types import ImageItem


@dataclass
class Level:
    mode: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, max(0, round(q / 100 * len(xs) + 0.5) - 1))]


def engine_throughput(config: EngineConfig, batch: int, repeats: int) -> float:
    """Images/s of the engine alone on batches of `batch` (one warm-up pass first)."""
    engine = TorchImageEngine.load(config)
    d = engine.info.defaults
    items = [ImageItem(i % len(engine.info.classes), i, int(d["num_steps"]), float(d["cfg_scale"]),
                       float(d["temperature"])) for i in range(batch)]
    engine.generate(items[:2])
    t0 = time.perf_counter()
    for _ in range(repeats):
        engine.generate(items)
    return batch * repeats / (time.perf_counter() - t0)


async def closed_loop(url: str, concurrency: int, seconds: float, max_requests: int, mode: str) -> Level:
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def worker(w: int) -> None:
            nonlocal errors, sent
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                t0 = time.perf_counter()
                r = await client.post("/v1/images", json={"class_id": sent % 10, "seed": sent})
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*[worker(w) for w in range(concurrency)])
        elapsed = time.perf_counter() - t0
    return Level(mode, concurrency, len(latencies), errors, elapsed, latencies)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", help="untrained preset (default: the embedded model, else djepa-s)")
    p.add_argument("--checkpoint", help="a djepa checkpoint")
    p.add_argument("--concurrency", default="1,2,4,8,16,32,64", help="comma-separated levels")
    p.add_argument("--seconds", type=float, default=8.0, help="time budget per level")
    p.add_argument("--max-requests", type=int, default=400, help="request budget per level")
    p.add_argument("--batch", type=int, default=32, help="max_batch_size with batching on, and the engine's batch")
    p.add_argument("--wait", type=float, default=0.25, help="batch_wait_timeout_s with batching on")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the engine (service and baseline)")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--modes", default="batched,unbatched", help="which service modes to sweep")
    p.add_argument("--out", type=Path, help="write the markdown table here")
    args = p.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    engine_cfg = EngineConfig(checkpoint=args.checkpoint, preset=args.preset, threads=args.threads)

    torch.set_num_threads(args.threads)
    base1 = engine_throughput(engine_cfg, 1, 3)
    base = engine_throughput(engine_cfg, args.batch, 3)
    print(f"engine alone: {base1:.2f} img/s at batch 1, {base:.2f} img/s at batch {args.batch}", flush=True)

    from ray import serve

    from service.deployments import build_app

    results: list[Level] = []
    ray_local.start_ray(num_cpus=args.num_cpus)
    try:
        local = ray_local.start_serve(access_log=False)
        modes = [(m, args.batch if m == "batched" else 1) for m in args.modes.split(",")]
        for mode, size in modes:
            options = {"ImageGenerator": {"max_ongoing_requests": max(64, 2 * args.batch), "max_queued_requests": 1024,
                                          "user_config": {"max_batch_size": size, "batch_wait_timeout_s": args.wait}}}
            serve.run(build_app(AppConfig(engine=engine_cfg), options), name="bench", route_prefix="/")
            asyncio.run(closed_loop(local.url, 2, 2.0, 4, "warm-up"))
            for c in levels:
                level = asyncio.run(closed_loop(local.url, c, args.seconds, args.max_requests, mode))
                results.append(level)
                print(f"{mode:9s} C={c:3d}: {level.throughput:6.2f} img/s  p50 {level.pct(50):.3f}s  "
                      f"p95 {level.pct(95):.3f}s  p99 {level.pct(99):.3f}s  ({level.requests} ok, "
                      f"{level.errors} errors)", flush=True)
        model = serve.get_deployment_handle("ImageGenerator", app_name="bench").info.remote().result().id
    finally:
        ray_local.shutdown()

    table = render(results, base1, base, args, model)
    print(table)
    if args.out:
        args.out.write_text(table)
    return 0


def render(results: list[Level], base1: float, base: float, args: argparse.Namespace, model: str) -> str:
    by = {(r.mode, r.concurrency): r for r in results}
    lines = [f"model `{model}`, torch threads {args.threads}, {args.num_cpus} Ray CPUs; batching on: max_batch_size "
             f"{args.batch}, wait {args.wait}s; per level: {args.seconds:g}s or {args.max_requests} requests", "",
             f"engine alone (no Ray, no HTTP): **{base:.2f} img/s** at batch {args.batch}, "
             f"{base1:.2f} img/s at batch 1",
             "", "| clients | batched img/s | p50 s | p95 s | p99 s | unbatched img/s | p50 s | p95 s | p99 s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in sorted({r.concurrency for r in results}):
        row = [str(c)]
        for mode in ("batched", "unbatched"):
            r = by.get((mode, c))
            row += ["-"] * 4 if r is None else [f"{r.throughput:.2f}", f"{r.pct(50):.3f}", f"{r.pct(95):.3f}",
                                                f"{r.pct(99):.3f}"]
        lines.append("| " + " | ".join(row) + " |")
    b32, u32 = by.get(("batched", 32)), by.get(("unbatched", 32))
    if b32 and u32 and base > 0 and u32.throughput > 0:
        lines += ["", f"at 32 clients: batched service = {b32.throughput / base:.0%} of the engine alone "
                      f"(goal >= 80%), {b32.throughput / u32.throughput:.1f}x the unbatched service (goal >= 4x)"]
    errors = sum(r.errors for r in results)
    lines.append(f"\nerrors: {errors}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
