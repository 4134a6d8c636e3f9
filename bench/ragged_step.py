"""One continuous-batching step of requests at different AR steps, against the same requests in lockstep.

At saturation a replica's in-flight requests sit at different AR steps ("phases": groups that joined at
different step boundaries), so their rows keep different numbers of tokens visible and take the ragged
encoder (`DJEPA.encode_ragged`: rows packed for the linear layers, attention per bucket of rows of similar
length, models/ragged.py). This measures what that costs in-process, without Ray or HTTP: one
`stepwise.advance` of N requests in P phases evenly spread over the steps, against N requests all at the
middle step (P = 1: the same visible tokens in all, one dense forward), for several bucket counts; and one
step of a static batch (`sample_tokens` through `engine.generate`, its time over the step count). CPU ms of
this process per step (the smallest of `--repeats` after a warm-up, rounds interleaved so drifts of the
machine hit every way alike), with the encoder's share.

    .venv/bin/python bench/ragged_step.py                                  # djepa-tiny64, 32 requests
    .venv/bin/python bench/ragged_step.py --preset djepa-m256 --images 16 --phases 16 --buckets 1,4
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
    p.add_argument("--phases", default="4,32", help="distinct AR steps the requests are spread over (comma-separated)")
    p.add_argument("--buckets", default="1,6", help="bucket counts to compare (comma-separated)")
    p.add_argument("--repeats", type=int, default=8, help="timed calls per way and round (the smallest kept)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the median of their minima)")
    args = p.parse_args()
    buckets = [int(b) for b in args.buckets.split(",") if b]
    phases = [int(b) for b in args.phases.split(",") if b]
    if not buckets or min(buckets) < 1 or args.images < 2 or not phases or min(phases) < 2:
        p.error("need bucket counts >= 1, phases >= 2 and at least 2 images")
    if max(phases) > args.images:
        p.error("at most one phase per image")
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

    def at_steps(n_phases: int) -> list[int]:  # image i in phase i * P // N; phases evenly over the steps, centred
        return [(i * n_phases // args.images) * steps // n_phases + (steps // n_phases - 1) // 2
                for i in range(args.images)]

    middle = round(sum(at_steps(max(phases))) / args.images)
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

    def static() -> None:
        engine.generate(items)

    ways: dict[str, tuple[Callable[[], None], Callable[[], None] | None]] = {
        "static batch (`sample_tokens`), one step": (static, None),
        f"lockstep at step {middle} (dense encoder)": (advance(lockstep, 1), encoder(lockstep, None))}
    for n_phases in phases:
        spread = states_at(at_steps(n_phases))
        for k in buckets:
            ways[f"{n_phases} phases, {k} bucket{'s' if k > 1 else ''}"] = (advance(spread, k), encoder(spread, k))

    def cpu_ms(fn: Callable[[], None] | None, repeats: int, per: int = 1) -> float:
        if fn is None:
            return float("nan")
        best = float("inf")
        for _ in range(repeats):
            t = time.process_time()
            fn()
            best = min(best, time.process_time() - t)
        return best * 1e3 / per

    results: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    with torch.no_grad():
        for step_fn, enc_fn in ways.values():  # warm-up
            step_fn()
            if enc_fn is not None:
                enc_fn()
        for r in range(args.rounds):
            for name, (step_fn, enc_fn) in ways.items():
                if step_fn is static:  # a whole generation: fewer repeats, its time per step
                    results[name].append((cpu_ms(step_fn, max(1, args.repeats // 4), steps), float("nan")))
                else:
                    results[name].append((cpu_ms(step_fn, args.repeats), cpu_ms(enc_fn, args.repeats)))
            print(f"round {r + 1}: " + ", ".join(f"{v[-1][0]:.1f}" for v in results.values()), flush=True)

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    base = median([v[0] for v in results["static batch (`sample_tokens`), one step"]])
    print(f"\n{engine.info.id}: one step of {args.images} requests ({steps} AR steps, cfg {d['cfg_scale']}) in "
          f"phases evenly over the steps, or all at step {middle}; CPU ms, median of {args.rounds} rounds of the "
          f"best of {args.repeats}\n")
    print("| way | step ms | vs static | encoder ms |\n|---|---:|---:|---:|")
    for name, values in results.items():
        step, enc = median([v[0] for v in values]), median([v[1] for v in values])
        enc_text = "" if enc != enc else f"{enc:.1f}"
        print(f"| {name} | {step:.1f} | {100 * (step / base - 1):+.0f}% | {enc_text} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
