"""What p99 ratio continuous batching can reach against `@serve.batch`: both schedulers as a queueing model.

Issue 11's goal (p99 at least 2x lower than static batching at the same throughput, moderate load) depends on
how a step's cost grows with the images in it, which this 2-core CPU and a GPU answer differently. This script
replays Poisson arrivals through a model of each scheduler, with a step of n images costing
`fixed + per_image * n` milliseconds, so the two measured constants (or a GPU's) say what ratio to expect:

- static (`service/generator_deployment.py` over Ray's `@serve.batch`): a batch closes `--wait` seconds after
  its first request is taken from the queue, or as soon as it holds `--batch` requests; collection goes on
  while earlier batches run (Ray forms the next batch without waiting for the engine), and batches run one at
  a time, each all `--steps` AR steps of its requests in lockstep.
- continuous (`service/scheduler.py`): requests join at the next step boundary while fewer than `--batch` are in
  flight, every step advances all of them, and each leaves after its own `--steps` steps.

Where a step costs the same whatever its batch (per_image 0), a request that arrives just after a static batch
started waits for its rest and then for its own batch: static's p99 tends to twice one request's generation
time T while continuous's stays at T, so the ratio tends to 2 from below, unless static's batches queue behind
each other (its wait shorter than T at a rate that fills batches slowly). A per-image cost makes continuous's
latency grow with the requests in flight, and lowers the ratio.

    .venv/bin/python bench/queue_model.py --fixed-ms 3.4 --per-image-ms 1.2 --rates 1,3,5,6 --waits 0.07,0.25,0.4
    .venv/bin/python bench/queue_model.py --measure --rates 3,5                 # constants from this machine

`--measure` times one `advance` of the step-wise sampler in-process (djepa-tiny64 by default; djepa_core only, so
it runs on the GPU machine too: `bench/gpu_check.sh`) with `--sizes` requests spread over as many AR steps (what
continuous batching runs) and fits the two constants; `--loads` gives the rates as fractions of the capacity of
full batches, for hardware whose rates are not known in advance.

    python bench/queue_model.py --measure --device cuda --precision bf16 --sizes 1,4,16,64 --batch 64 \
        --loads 0.1,0.25,0.5
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # --measure from a checkout without installing


@dataclass(frozen=True)
class StepCost:
    """Seconds of one AR step of `n` images: fixed + per_image * n."""

    fixed: float
    per_image: float

    def __call__(self, n: int) -> float:
        return self.fixed + self.per_image * n


def poisson_arrivals(rate: float, seconds: float, seed: int) -> list[float]:
    """Arrival times (seconds) of a Poisson process of `rate` per second over `seconds`."""
    gaps = random.Random(seed)
    times, at = [], gaps.expovariate(rate)
    while at <= seconds:
        times.append(at)
        at += gaps.expovariate(rate)
    return times


def static_latencies(arrivals: Sequence[float], cost: StepCost, steps: int, wait: float,
                     batch: int) -> list[float]:
    """Latency of every request (arrival order) under Ray's `@serve.batch` and one engine running batches in
    turn: a batch closes `wait` after its first request is taken, or when it holds `batch`."""
    latencies: list[float] = []
    engine_free = 0.0  # when the engine finishes the batches taken so far
    taken = 0.0        # when the collector took its last batch (it then takes the next queued request at once)
    i, n = 0, len(arrivals)
    while i < n:
        first = max(arrivals[i], taken)
        close = first + wait
        j = i + 1
        while j < n and j - i < batch and arrivals[j] <= close:
            j += 1
        ready = arrivals[j - 1] if j - i == batch else close
        taken = ready
        engine_free = max(engine_free, ready) + steps * cost(j - i)
        latencies += [engine_free - a for a in arrivals[i:j]]
        i = j
    return latencies


def continuous_latencies(arrivals: Sequence[float], cost: StepCost, steps: int, max_in_flight: int) -> list[float]:
    """Latency of every request (arrival order) under the step scheduler: join at the next step boundary while
    fewer than `max_in_flight` run, leave after `steps` steps, one step of all in flight costing `cost(n)`."""
    latencies = [0.0] * len(arrivals)
    in_flight: list[list[int]] = []  # [request index, steps left]
    now, i, n = 0.0, 0, len(arrivals)
    while i < n or in_flight:
        while i < n and arrivals[i] <= now and len(in_flight) < max_in_flight:
            in_flight.append([i, steps])
            i += 1
        if not in_flight:
            now = arrivals[i]
            continue
        now += cost(len(in_flight))
        for job in in_flight:
            job[1] -= 1
            if job[1] == 0:
                latencies[job[0]] = now - arrivals[job[0]]
        in_flight = [job for job in in_flight if job[1] > 0]
    return latencies


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`th percentile (nearest rank), as bench/serve_load.py reports it."""
    xs = sorted(values)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * len(xs) + 0.5) - 1))]


@dataclass
class Outcome:
    p50: float
    p99: float
    throughput: float  # completed requests per second, first arrival to last answer


def outcome(arrivals: Sequence[float], latencies: Sequence[float]) -> Outcome:
    last = max(a + lat for a, lat in zip(arrivals, latencies, strict=True))
    return Outcome(percentile(latencies, 50), percentile(latencies, 99), len(latencies) / (last - arrivals[0]))


def model_table(cost: StepCost, steps: int, batch: int, rates: Sequence[float], waits: Sequence[float],
                seconds: float, seeds: int) -> str:
    """Markdown: per rate and static wait, medians over `seeds` arrival sequences of p50/p99/throughput."""
    lines = [f"step = {cost.fixed * 1e3:.2f} ms + {cost.per_image * 1e3:.2f} ms x images; {steps} AR steps "
             f"(one request alone: {steps * cost(1):.3f} s); batch / max_in_flight {batch}; {seconds:g} s of "
             f"arrivals, medians of {seeds} seeds", "",
             "| rate req/s | static wait s | static img/s | p50 s | p99 s | continuous img/s | p50 s | p99 s "
             "| p99 static / continuous |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for rate in rates:
        runs = [poisson_arrivals(rate, seconds, seed) for seed in range(seeds)]
        runs = [r for r in runs if r]
        if not runs:
            continue
        cont = [outcome(r, continuous_latencies(r, cost, steps, batch)) for r in runs]
        for wait in waits:
            stat = [outcome(r, static_latencies(r, cost, steps, wait, batch)) for r in runs]

            def mid(xs: list[Outcome], field: str) -> float:
                return statistics.median(getattr(x, field) for x in xs)

            ratio = mid(stat, "p99") / mid(cont, "p99")
            lines.append(f"| {rate:g} | {wait:g} | {mid(stat, 'throughput'):.2f} | {mid(stat, 'p50'):.3f} | "
                         f"{mid(stat, 'p99'):.3f} | {mid(cont, 'throughput'):.2f} | {mid(cont, 'p50'):.3f} | "
                         f"{mid(cont, 'p99'):.3f} | {ratio:.2f}x |")
    return "\n".join(lines) + "\n"


def measure(preset: str, sizes: Sequence[int], repeats: int, device: str = "cpu", precision: str = "fp32",
            threads: int = 1) -> StepCost:
    """Fit the step cost of the step-wise sampler (djepa_core only, as the GPU machine has it): one `advance` of n
    requests spread over n AR steps (as requests that joined at different step boundaries) for each n of
    `sizes`, the smallest of `repeats` (CPU time of this process on a CPU, wall time after a synchronize on a
    GPU), least squares over the sizes."""
    import torch

    from djepa_core.fastpath import FastPath
    from djepa_core.pipeline import ImageGenerator
    from djepa_core.presets import get_preset
    from djepa_core.samplers import stepwise

    torch.set_num_threads(threads)
    dev = torch.device(device)
    fast = FastPath(precision="bf16" if precision == "bf16" else "fp32")
    gen = ImageGenerator.from_config(get_preset(preset)).to(dev).accelerate(fast)
    settings, classes = gen.settings(), gen.config.model.num_classes
    steps = settings.num_steps
    samplers: dict[tuple[object, ...], Any] = {}

    def advance(states: list[stepwise.ARState]) -> list[stepwise.ARState]:
        with gen.fast.autocast(gen.device):
            return stepwise.advance(gen.model, states, samplers)

    def clock() -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            return time.perf_counter()
        return time.process_time()

    seconds = []
    for n in sizes:
        states = [stepwise.start(gen.model, k % classes, k, settings) for k in range(n)]
        for k in range(n):  # request k at AR step k * steps / (2n): spread like joins at different boundaries
            for _ in range(k * steps // (2 * n)):
                states[k] = advance([states[k]])[0]
        advance(states)  # warm-up at this size
        best = float("inf")
        for _ in range(repeats):
            t0 = clock()
            advance(states)
            best = min(best, clock() - t0)
        seconds.append(best)
        print(f"  {n} requests in {n} phases: {best * 1e3:.2f} ms per step", file=sys.stderr)
    if len(sizes) == 1:
        return StepCost(seconds[0], 0.0)
    mx, my = statistics.fmean(sizes), statistics.fmean(seconds)
    slope = sum((x - mx) * (y - my) for x, y in zip(sizes, seconds, strict=True)) / sum((x - mx) ** 2 for x in sizes)
    return StepCost(max(0.0, my - slope * mx), max(0.0, slope))


def capacity(cost: StepCost, steps: int, batch: int) -> float:
    """Requests/s of full batches of `batch` run back to back (either scheduler's most)."""
    return batch / (steps * cost(batch))


def number_list(kind: type[float] | type[int], least: float) -> Any:
    """argparse type: comma-separated numbers of `kind`, each at least `least`."""
    def parse(text: str) -> list[Any]:
        try:
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None
        if not values or any(v < least for v in values):
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}s >= {least:g}, got {text!r}")
        return values

    return parse


floats, ints = number_list(float, 0.0), number_list(int, 1)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fixed-ms", type=float, default=3.4, help="a step's cost whatever its images (ms)")
    p.add_argument("--per-image-ms", type=float, default=1.2, help="a step's cost per image in it (ms)")
    p.add_argument("--measure", action="store_true", help="fit both from steps of the sampler in-process")
    p.add_argument("--preset", default="djepa-tiny64", help="--measure: the untrained preset timed")
    p.add_argument("--device", default="auto", help="--measure: auto (cuda if available), cpu or cuda")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="--measure: the fast path's")
    p.add_argument("--threads", type=int, default=1, help="--measure: torch CPU threads (1, as the replicas)")
    p.add_argument("--sizes", type=ints, default=[1, 2, 4, 8], help="--measure: requests per timed step")
    p.add_argument("--repeats", type=int, default=20, help="--measure: timed steps per size (the smallest kept)")
    p.add_argument("--steps", type=int, help="AR steps of every request (default: the preset's with --measure, "
                   "else 64)")
    p.add_argument("--batch", type=int, default=32, help="static max_batch_size and continuous max_in_flight")
    p.add_argument("--rates", type=floats, default=[1.0, 3.0, 5.0, 6.0], help="arrival rates, requests/s")
    p.add_argument("--loads", type=floats, help="arrival rates as fractions of the capacity of full batches "
                   "(instead of --rates)")
    p.add_argument("--waits", type=floats, default=[0.25], help="static batch_wait_timeout_s values")
    p.add_argument("--seconds", type=float, default=300.0, help="arrivals per sequence (simulated seconds)")
    p.add_argument("--seeds", type=int, default=20, help="arrival sequences per rate (medians reported)")
    args = p.parse_args(argv)
    if (args.steps is not None and args.steps < 1) or args.batch < 1 or args.seeds < 1 or args.seconds <= 0 \
            or args.repeats < 1:
        p.error("--steps, --batch, --seeds and --repeats must be >= 1 and --seconds > 0")
    if not args.measure and (args.fixed_ms < 0 or args.per_image_ms < 0 or args.fixed_ms + args.per_image_ms == 0):
        p.error("--fixed-ms and --per-image-ms must be >= 0, not both 0")
    if args.measure:
        import torch

        from djepa_core.presets import get_preset

        device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
        cost = measure(args.preset, args.sizes, args.repeats, device, args.precision, args.threads)
        steps = args.steps or get_preset(args.preset).sampling.num_steps
    else:
        cost, steps = StepCost(args.fixed_ms / 1e3, args.per_image_ms / 1e3), args.steps or 64
    full = capacity(cost, steps, args.batch)
    rates = [round(x * full, 2) for x in args.loads] if args.loads else args.rates
    rates = [r for r in rates if r > 0]
    if not rates:
        p.error("need a rate above 0")
    print(f"capacity of full batches of {args.batch}: {full:.2f} req/s")
    print(model_table(cost, steps, args.batch, rates, args.waits, args.seconds, args.seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
