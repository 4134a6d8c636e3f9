"""Closed-loop load on the image service over loopback, with batching on and off, against the engine alone.

For each concurrency C in the sweep, C clients each send a request, wait for its answer, and send the
next, until the level's time or request budget is spent. Reported per level: throughput (images/s)
and p50/p95/p99 latency. Batching off is the same deployment reconfigured live to max_batch_size=1.
The engine's own batched throughput (no Ray, no HTTP) is measured in this process first.

    .venv/bin/python bench/serve_load.py --out /tmp/table.md     # about 5 minutes on 2 cores

Open-loop Poisson arrivals (issue 11: continuous against static batching): requests arrive at each
rate in `--rates` (requests/s, exponential gaps from a fixed seed) for `--seconds`, whatever the answers;
reported per rate: throughput (images/s, completed / time from the first send to the last answer) and
p50/p99 latency; then the saturation throughput of each mode (closed loop at `--saturation` clients).
Modes: `static` (`@serve.batch`, max_batch_size `--batch`, wait `--wait`) and `continuous` (the step
scheduler, max_in_flight `--batch`).

    .venv/bin/python bench/serve_load.py --arrivals poisson --rates 1,2,4 --modes static,continuous \
        --seconds 20 --out /tmp/poisson.md
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


async def closed_loop(url: str, concurrency: int, seconds: float, max_requests: int, mode: str,
                      body: dict[str, object] | None = None) -> Level:
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
                r = await client.post("/v1/images", json={"class_id": sent % 10, "seed": sent, **(body or {})})
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*[worker(w) for w in range(concurrency)])
        elapsed = time.perf_counter() - t0
    return Level(mode, concurrency, len(latencies), errors, elapsed, latencies)


async def poisson_load(url: str, rate: float, seconds: float, mode: str, seed: int,
                       body: dict[str, object]) -> Level:
    """Open loop: requests at Poisson arrivals of `rate` per second for `seconds`; waits for every answer."""
    gaps = random.Random(seed)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def one(k: int) -> None:
            nonlocal errors
            t0 = time.perf_counter()
            r = await client.post("/v1/images", json={"class_id": k % 10, "seed": k, **body})
            if r.status_code == 200:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1

        start = time.perf_counter()
        tasks, k, at = [], 0, 0.0
        while True:
            at += gaps.expovariate(rate)
            if at > seconds:
                break
            await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
            tasks.append(asyncio.ensure_future(one(k)))
            k += 1
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return Level(mode, 0, len(latencies), errors, elapsed, latencies)


def generator_options(mode: str, batch: int, wait: float,
                      replica_env: dict[str, str] | None = None) -> dict[str, dict[str, object]]:
    """deploy/serve.yaml-style options of the image generator for a benchmark mode; `replica_env`: env vars of
    the replica's process (over service.deployments.REPLICA_ENV)."""
    user: dict[str, object] = {"max_batch_size": 1 if mode == "unbatched" else batch, "batch_wait_timeout_s": wait}
    if mode == "continuous":
        user.update({"batching": "continuous", "max_in_flight": batch, "max_waiting": 1024})
    options: dict[str, object] = {
        "max_ongoing_requests": max(64, 2 * batch) + (1024 if mode == "continuous" else 0),
        "max_queued_requests": 1024, "user_config": user}
    if replica_env:
        options["ray_actor_options"] = {"runtime_env": {"env_vars": dict(replica_env)}}
    return {"ImageGenerator": options}


def replica_work(before: dict[str, Any], after: dict[str, Any], level: Level) -> str:
    """The generator replica's side of a run, from its `work_stats` before and after: process CPU seconds per
    image, the fraction of the run's time its engine was busy, and (continuous) the mean images per step and
    how many different AR steps they were at (1: all in lockstep)."""
    images = max(1, level.requests)
    text = (f"replica {(after['cpu_s'] - before['cpu_s']) / images * 1000:.0f} ms CPU/image, engine busy "
            f"{(after['busy_s'] - before['busy_s']) / level.seconds:.0%}")
    text += (f", {(after['context_switches'] - before['context_switches']) / images:.0f} context switches/image, "
             f"{after['threads']} threads")
    if "steps" in after and after["steps"] > before["steps"]:
        steps = after["steps"] - before["steps"]
        text += (f", {(after['rows'] - before['rows']) / steps:.1f} images/step at "
                 f"{(after['phases'] - before['phases']) / steps:.1f} distinct AR steps, "
                 f"{steps / max(1, after['calls'] - before['calls']):.1f} steps per worker call")
    return text


def parse_env(text: str) -> dict[str, str]:
    """`KEY=VALUE,KEY=VALUE` -> dict (argparse type of --replica-env)."""
    pairs = [p for p in text.split(",") if p.strip()]
    bad = [p for p in pairs if "=" not in p]
    if bad:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE pairs, got {bad}")
    return dict(p.strip().split("=", 1) for p in pairs)


def poisson_main(args: argparse.Namespace, engine_cfg: EngineConfig) -> int:
    from ray import serve

    from service.deployments import build_app

    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    modes = [m for m in args.modes.split(",") if m]
    if not rates and args.saturation <= 0:
        raise SystemExit("nothing to run: give --rates or --saturation")
    body: dict[str, object] = {} if args.num_steps is None else {"num_steps": args.num_steps}
    results: dict[tuple[str, float], list[Level]] = {}
    saturation: dict[str, list[Level]] = {}
    work: dict[str, list[str]] = {}
    ray_local.start_ray(num_cpus=args.num_cpus)
    try:
        local = ray_local.start_serve(access_log=False)
        for rnd in range(args.rounds):  # modes alternate, so drifts of a shared machine hit both alike
            for mode in modes:
                serve.run(build_app(AppConfig(engine=engine_cfg, request_timeout_s=600),
                                    generator_options(mode, args.batch, args.wait, args.replica_env)),
                          name="bench", route_prefix="/")
                asyncio.run(closed_loop(local.url, 2, 2.0, 4, "warm-up"))
                for i, rate in enumerate(rates):
                    level = asyncio.run(poisson_load(local.url, rate, args.seconds, mode, 1000 + i, body))
                    results.setdefault((mode, rate), []).append(level)
                    print(f"round {rnd + 1} {mode:10s} rate {rate:5.2f}/s: {level.throughput:6.2f} img/s  "
                          f"p50 {level.pct(50):.3f}s  p99 {level.pct(99):.3f}s  ({level.requests} ok, "
                          f"{level.errors} errors)", flush=True)
                if args.saturation > 0:
                    replica = serve.get_deployment_handle("ImageGenerator", app_name="bench")
                    before = replica.work_stats.remote().result()
                    level = asyncio.run(closed_loop(local.url, args.saturation, args.seconds, 100000, mode, body))
                    after = replica.work_stats.remote().result()
                    saturation.setdefault(mode, []).append(level)
                    work.setdefault(mode, []).append(replica_work(before, after, level))
                    print(f"round {rnd + 1} {mode:10s} saturation C={args.saturation}: {level.throughput:6.2f} "
                          f"img/s  p50 {level.pct(50):.3f}s  p99 {level.pct(99):.3f}s  {work[mode][-1]}", flush=True)
        model = serve.get_deployment_handle("ImageGenerator", app_name="bench").info.remote().result().id
    finally:
        ray_local.shutdown()

    def mid(values: list[float]) -> float:
        return statistics.median(values)

    env = args.replica_env or "the service's"
    rounds = f"; medians of {args.rounds} alternating rounds" if args.rounds > 1 else ""
    lines = [f"model `{model}`, torch threads {args.threads}, {args.num_cpus} Ray CPUs, replica env {env}; "
             f"static: max_batch_size "
             f"{args.batch}, wait {args.wait}s; continuous: max_in_flight {args.batch}; num_steps "
             f"{args.num_steps or 'default'}; {args.seconds:g}s per rate and saturation run{rounds}", ""]
    if rates:
        lines += ["| rate req/s | " + " | ".join(f"{m} img/s | p50 s | p99 s" for m in modes) + " |",
                  "|---:|" + "---:|---:|---:|" * len(modes)]
    for rate in rates:
        row = [f"{rate:g}"]
        for m in modes:
            rs = results[(m, rate)]
            row += [f"{mid([r.throughput for r in rs]):.2f}", f"{mid([r.pct(50) for r in rs]):.3f}",
                    f"{mid([r.pct(99) for r in rs]):.3f}"]
        lines.append("| " + " | ".join(row) + " |")
    if saturation:
        lines += ["", f"saturation (closed loop, {args.saturation} clients): " + ", ".join(
            f"{m} {mid([r.throughput for r in rs]):.2f} img/s (p99 {mid([r.pct(99) for r in rs]):.2f}s)"
            for m, rs in saturation.items())]
        for m, rs in saturation.items():
            runs = zip(rs, work[m], strict=True)
            lines += [f"- {m}: " + "; ".join(f"{r.throughput:.2f} img/s ({w})" for r, w in runs)]
    everything = [r for rs in [*results.values(), *saturation.values()] for r in rs]
    lines.append(f"\nerrors: {sum(r.errors for r in everything)}")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        args.out.write_text(table)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", help="untrained preset (default: the embedded model, else djepa-s)")
    p.add_argument("--checkpoint", help="a djepa checkpoint")
    p.add_argument("--concurrency", default="1,2,4,8,16,32,64", help="comma-separated levels")
    p.add_argument("--seconds", type=float, default=8.0, help="time budget per level")
    p.add_argument("--max-requests", type=int, default=400, help="request budget per level")
    p.add_argument("--batch", type=int, default=32, help="max_batch_size with batching on, and the engine's batch")
    p.add_argument("--wait", type=float, default=0.25, help="batch_wait_timeout_s with batching on")
    p.add_argument("--replica-env", type=parse_env, default={}, metavar="KEY=VALUE,...",
                   help="env vars of the generator replica's process, over the service's own "
                        "(service.deployments.REPLICA_ENV), e.g. MALLOC_ARENA_MAX=16")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the engine (service and baseline)")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--modes", default="batched,unbatched", help="which service modes to sweep")
    p.add_argument("--out", type=Path, help="write the markdown table here")
    p.add_argument("--arrivals", choices=("closed", "poisson"), default="closed",
                   help="closed loop (concurrency levels) or open-loop Poisson arrivals (rates)")
    p.add_argument("--rates", default="1,2,4", help="poisson: comma-separated arrival rates, requests/s "
                   "('' with --saturation: the saturation runs alone)")
    p.add_argument("--rounds", type=int, default=1, help="poisson: sweeps of all modes, alternating (medians)")
    p.add_argument("--saturation", type=int, default=32, help="poisson: closed-loop clients of the saturation "
                   "run of each mode (0: none)")
    p.add_argument("--num-steps", type=int, help="AR steps of every request (default: the model's)")
    args = p.parse_args()
    engine_cfg = EngineConfig(checkpoint=args.checkpoint, preset=args.preset, threads=args.threads)
    if args.arrivals == "poisson":
        torch.set_num_threads(args.threads)
        return poisson_main(args, engine_cfg)
    levels = [int(c) for c in args.concurrency.split(",")]

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
