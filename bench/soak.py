"""Soak: the image service on loopback at saturating load for a bounded time, nothing lost.

C closed-loop clients each send POST /v1/images, wait for the answer, and send the next, until the
time is spent (saturating: C is far above what the generator finishes per batch, so the queue stays
full). Reported: requests sent, answered by status, lost (sent but never answered: a transport error
or a client timeout; must be 0), p50/p99 latency of the 200s, and the resident memory (RSS) of this
run's Ray processes after warm-up and at the end (goal: under 5% growth). The exit status is 1 when
anything was lost or a status other than 200/429 came back.

    .venv/bin/python bench/soak.py                      # 10 minutes, deploy/serve.yaml, the default model
    .venv/bin/python bench/soak.py --duration 180 --concurrency 64 --preset djepa-tiny
    .venv/bin/python bench/soak.py --url http://127.0.0.1:8000 --duration 60   # a service already running

Without --url it starts its own private Ray through service/ray_local.py (loopback only, free ports).
Linux only for the memory figures (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class SoakResult:
    seconds: float
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    lost: int = 0  # sent, never answered
    lost_reasons: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # of the 200s
    rss_after_warmup: int = 0  # bytes, this run's Ray processes
    rss_end: int = 0

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, max(0, round(q / 100 * len(xs) + 0.5) - 1))]

    @property
    def rss_growth(self) -> float:
        return (self.rss_end - self.rss_after_warmup) / self.rss_after_warmup if self.rss_after_warmup else 0.0

    def report(self) -> str:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        mib = 1 / 2**20
        return (f"{self.seconds:.0f} s: sent {self.sent}, answered {self.answered} ({codes}), lost {self.lost}"
                + (f" {dict(self.lost_reasons)}" if self.lost else "")
                + f"; 200s: {self.statuses.get(200, 0) / self.seconds:.1f}/s, p50 {self.pct(50) * 1e3:.0f} ms, "
                  f"p99 {self.pct(99) * 1e3:.0f} ms; Ray RSS {self.rss_after_warmup * mib:.0f} MiB after warm-up -> "
                  f"{self.rss_end * mib:.0f} MiB at the end ({self.rss_growth * 100:+.2f}%)")


# ---------------------------------------------------------------- memory of this run's Ray processes (/proc)

def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def ray_rss_bytes(root: int | None = None) -> int:
    """Summed RSS of the Ray processes below `root` (default: this process, the driver that started Ray)."""
    tree, total = _children(), 0
    stack = list(tree.get(root or os.getpid(), []))
    while stack:
        pid = stack.pop()
        stack.extend(tree.get(pid, []))
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if b"ray" not in cmdline:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


# ---------------------------------------------------------------- load

async def soak(url: str, duration_s: float, concurrency: int, warmup_s: float = 0.0, n: int = 1,
               headers: dict[str, str] | None = None, timeout_s: float = 120.0,
               classes: int = 10, progress: bool = False) -> SoakResult:
    """`concurrency` closed-loop clients on POST {url}/v1/images for `duration_s` (after `warmup_s`
    unrecorded). Each request carries its own id; every one must get an answer."""
    result = SoakResult(seconds=duration_s)
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits, headers=headers) as client:
        recording = False
        end = time.monotonic() + warmup_s + duration_s

        async def worker(w: int) -> None:
            rng = random.Random(w)
            while time.monotonic() < end:
                body = {"class_id": rng.randrange(classes), "n": n, "seed": rng.randrange(2**31)}
                record = recording
                t0 = time.perf_counter()
                if record:
                    result.sent += 1
                try:
                    r = await client.post("/v1/images", json=body)
                except httpx.HTTPError as e:
                    if record:
                        result.lost += 1
                        result.lost_reasons[type(e).__name__] += 1
                    continue
                if record:
                    result.statuses[r.status_code] += 1
                    if r.status_code == 200:
                        result.latencies.append(time.perf_counter() - t0)
                if r.status_code == 429:  # honour Retry-After a little (a closed loop would spin otherwise)
                    await asyncio.sleep(min(float(r.headers.get("retry-after", "1")), 1.0) * rng.random())

        tasks = [asyncio.ensure_future(worker(w)) for w in range(concurrency)]
        await asyncio.sleep(warmup_s)
        recording = True
        result.rss_after_warmup = ray_rss_bytes()
        last = time.monotonic()
        while not all(t.done() for t in tasks):
            await asyncio.sleep(0.5)
            if progress and time.monotonic() - last >= 30:
                last = time.monotonic()
                print(f"  ... sent {result.sent}, answered {result.answered}, lost {result.lost}, "
                      f"RSS {ray_rss_bytes() / 2**20:.0f} MiB", flush=True)
        await asyncio.gather(*tasks)
        result.rss_end = ray_rss_bytes()
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=600.0, help="seconds recorded (default 600)")
    p.add_argument("--warmup", type=float, default=30.0, help="seconds of load before recording (default 30)")
    p.add_argument("--concurrency", type=int, default=64, help="closed-loop clients (default 64)")
    p.add_argument("-n", type=int, default=1, help="images per request (default 1)")
    p.add_argument("--url", help="a running service (default: start one from --config on loopback)")
    p.add_argument("--config", type=Path, default=ROOT / "deploy" / "serve.yaml")
    p.add_argument("--preset", help="serve an untrained preset instead of the config's model (e.g. djepa-tiny)")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--api-key", help="Authorization: Bearer key, when the service asks for one")
    args = p.parse_args()
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
    if args.url:
        result = asyncio.run(soak(args.url, args.duration, args.concurrency, args.warmup, args.n, headers,
                                  progress=True))
        return finish(result, args)

    from ray import serve

    from service import ray_local
    from service.cli import load_plan
    from service.deployments import build_app

    plan = load_plan(args.config, engine_overrides={"preset": args.preset})
    ray_local.start_ray(num_cpus=args.num_cpus)
    try:
        local = ray_local.start_serve(access_log=False)
        serve.run(build_app(plan.config, plan.options), name="soak", route_prefix="/")
        info: Any = httpx.get(local.url + "/v1/models", timeout=60).json()["data"][0]
        print(f"soak: model {info['id']}, {args.concurrency} clients x {args.n} image(s), "
              f"{args.warmup:.0f} s warm-up + {args.duration:.0f} s, at {local.url}", flush=True)
        result = asyncio.run(soak(local.url, args.duration, args.concurrency, args.warmup, args.n, headers,
                                  classes=len(info["classes"]), progress=True))
    finally:
        ray_local.shutdown()
    return finish(result, args)


def finish(result: SoakResult, args: argparse.Namespace) -> int:
    print(result.report())
    bad = set(result.statuses) - {200, 429}
    if result.lost or bad:
        print(f"FAIL: lost {result.lost}, unexpected statuses {sorted(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
