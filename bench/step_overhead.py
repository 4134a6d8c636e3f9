"""What continuous batching costs over static batches, in-process (no Ray, no HTTP): issue 11's saturation goal.

The same N images three ways, each in the main thread and in a worker thread (the replica's engine work runs in
`asyncio.to_thread` workers): `generate` (static: `sample_tokens` over one batch), `advance` in lockstep
(the step-wise sampler continuous batching uses) and the `StepScheduler` (its replica loop: the step in a worker
thread, bookkeeping on the event loop). Reported per way: CPU seconds of this process (median of `--rounds`
interleaved rounds, so the other core's work disturbs them less than wall time) and minor page faults.

    .venv/bin/python bench/step_overhead.py --preset djepa-tiny64          # glibc's malloc defaults
    env MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 \
        .venv/bin/python bench/step_overhead.py --preset djepa-tiny64      # the service replicas' (REPLICA_ENV)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from service.config import EngineConfig
from service.engine import TorchImageEngine
from service.scheduler import StepScheduler
from service.types import ImageItem


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="djepa-tiny64", help="untrained preset (default: djepa-tiny64, 64 AR steps)")
    p.add_argument("--checkpoint", help="a djepa checkpoint instead of a preset")
    p.add_argument("--images", type=int, default=32, help="images per way (one batch; max_in_flight for the scheduler)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians reported)")
    args = p.parse_args()
    torch.set_num_threads(1)
    engine = TorchImageEngine.load(EngineConfig(preset=None if args.checkpoint else args.preset,
                                                checkpoint=args.checkpoint, threads=1))
    d = engine.info.defaults
    items = [ImageItem(i % len(engine.info.classes), i, int(d["num_steps"]), float(d["cfg_scale"]),
                       float(d["temperature"])) for i in range(args.images)]

    def static() -> None:
        engine.generate(items)

    def lockstep() -> None:
        states = [engine.start(it) for it in items]
        while not all(engine.is_done(s) for s in states):
            states = engine.advance(states)
        engine.outputs(items, states)

    def scheduler() -> None:
        async def run() -> None:
            sched = StepScheduler(engine, max_in_flight=len(items))
            await asyncio.gather(*(sched.submit(it) for it in items))
        asyncio.run(run())

    worker = ThreadPoolExecutor(1)

    def measure(fn: Callable[[], None]) -> tuple[float, int]:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = time.process_time()
        fn()
        return time.process_time() - t, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults

    ways: dict[str, Callable[[], tuple[float, int]]] = {
        "generate, main thread": lambda: measure(static),
        "generate, worker thread": lambda: worker.submit(measure, static).result(),
        "advance lockstep, main thread": lambda: measure(lockstep),
        "advance lockstep, worker thread": lambda: worker.submit(measure, lockstep).result(),
        "StepScheduler (step in a worker thread)": lambda: measure(scheduler),
    }
    for fn in ways.values():  # warm-up
        fn()
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in ways}
    for r in range(args.rounds):
        for name, fn in ways.items():
            runs[name].append(fn())
        print(f"round {r + 1}: " + ", ".join(f"{v[-1][0]:.2f}" for v in runs.values()), flush=True)
    malloc = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")} or "glibc defaults"
    print(f"\n{engine.info.id}, {args.images} images x {d['num_steps']} AR steps, malloc env {malloc}, "
          f"median of {args.rounds} rounds\n\n| way | CPU s | page faults |\n|---|---:|---:|")
    for name, values in runs.items():
        print(f"| {name} | {statistics.median(v[0] for v in values):.2f} | "
              f"{int(statistics.median(v[1] for v in values))} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
