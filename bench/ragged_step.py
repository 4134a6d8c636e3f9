"""One continuous-batching step of requests spread over the AR steps, against the same requests in lockstep.

At saturation a replica's in-flight requests sit at different AR steps, so their rows keep different numbers
of tokens visible and take the ragged encoder (`DJEPA.encode_ragged`: rows packed for the linear layers,
attention per bucket of rows of similar length, models/ragged.py). This measures what that costs in-process,
without Ray or HTTP: one `stepwise.advance` of N requests evenly spread over the steps (request i at step
i * K / N) against N requests all at the middle step (the same visible tokens in all, in one dense forward),
for several bucket counts. CPU ms of this process per step (the smallest of `--repeats` after a warm-up,
rounds interleaved so drifts of the machine hit every way alike), with the encoder's share.

    .venv/bin/python bench/ragged_step.py                                  # djepa-tiny64, 32 requests
    .venv/bin/python bench/ragged_step.py --preset djepa-m256 --images 16 --buckets 1,4
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from djepa_core.samplers import stepwise
from djepa_core.samplers.masked_ar import HeadSampler
from service.config import EngineConfig
from service.engine import TorchImageEngine
from service.types import ImageItem


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="djepa-tiny64", help="untrained preset (default: djepa-tiny64, 64 AR steps)")
    p.add_argument("--images", type=int, default=32, help="requests in the step (default 32)")
    p.add_argument("--buckets", default="1,2,4,6,8", help="bucket counts to compare (comma-separated)")
    p.add_argument("--repeats", type=int, default=8, help="timed calls per way and round (the smallest kept)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the median of their minima)")
    args = p.parse_args()
    buckets = [int(b) for b in args.buckets.split(",") if b]
    if not buckets or min(buckets) < 1 or args.images < 2:
        p.error("need bucket counts >= 1 and at least 2 images")
    torch.set_num_threads(1)
    engine = TorchImageEngine.load(EngineConfig(preset=args.preset, threads=1))
    model = engine.generator.model
    d = engine.info.defaults
    steps = int(d["num_steps"])
    items = [ImageItem(i % len(engine.info.classes), i, steps, float(d["cfg_scale"]), float(d["temperature"]))
             for i in range(args.images)]

    def states_at(at: list[int]) -> list[stepwise.ARState]:
        out = []
        for item, k in zip(items, at, strict=True):
            state = engine.start(item)
            for _ in range(k):
                state = engine.advance([state])[0]
            out.append(state)
        return out

    spread = states_at([i * steps // args.images for i in range(args.images)])
    middle = sum(i * steps // args.images for i in range(args.images)) // args.images
    lockstep = states_at([middle] * args.images)
    cache: dict[tuple[object, ...], HeadSampler] = {}

    def advance(states: list[stepwise.ARState], k: int) -> Callable[[], None]:
        def run() -> None:
            with engine.generator.fast.autocast(engine.generator.device):
                stepwise.advance(model, states, cache, k)
        return run

    def encoder(states: list[stepwise.ARState], k: int | None) -> Callable[[], None]:
        rows = [*states, *(s for s in states if s.guided)]
        tokens = torch.stack([s.tokens for s in rows])
        mask = torch.stack([s.mask for s in rows])
        class_vec = torch.cat([stepwise._class_rows(model, states),
                               model.null_vectors(len(rows) - len(states))])

        def run() -> None:
            if k is None:
                model.encode(tokens, mask, class_vec)
            else:
                model.encode_ragged(tokens, mask, class_vec, k)
        return run

    ways: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
        "lockstep (dense encoder)": (advance(lockstep, 1), encoder(lockstep, None))}
    for k in buckets:
        ways[f"spread, {k} bucket{'s' if k > 1 else ''}"] = (advance(spread, k), encoder(spread, k))

    def cpu_ms(fn: Callable[[], None]) -> float:
        best = float("inf")
        for _ in range(args.repeats):
            t = time.process_time()
            fn()
            best = min(best, time.process_time() - t)
        return best * 1e3

    results: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    with torch.no_grad():
        for step_fn, enc_fn in ways.values():  # warm-up
            step_fn()
            enc_fn()
        for r in range(args.rounds):
            for name, (step_fn, enc_fn) in ways.items():
                results[name].append((cpu_ms(step_fn), cpu_ms(enc_fn)))
            print(f"round {r + 1}: " + ", ".join(f"{v[-1][0]:.1f}" for v in results.values()), flush=True)

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    base = median([v[0] for v in results["lockstep (dense encoder)"]])
    print(f"\n{engine.info.id}: one step of {args.images} requests ({steps} AR steps, cfg {d['cfg_scale']}), "
          f"spread over steps 0-{(args.images - 1) * steps // args.images} or all at step {middle}; CPU ms, "
          f"median of {args.rounds} rounds of the best of {args.repeats}\n")
    print("| way | step ms | vs lockstep | encoder ms |\n|---|---:|---:|---:|")
    for name, values in results.items():
        step = median([v[0] for v in values])
        print(f"| {name} | {step:.1f} | {100 * (step / base - 1):+.0f}% | {median([v[1] for v in values]):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
