"""Sample quality against ms/image on the embedded model, for several AR-step / head-step / solver settings.

    python bench/quality_vs_speed.py runs/qvs/*.json --out bench/quality_vs_speed.png

Each JSON is a `djepa eval --out` report of the embedded model at one setting (its `settings` say which).
Quality comes from those reports (class accuracy and Fréchet ratio on 1,440 samples, fixed seeds); speed is
measured here for the same settings with the sampler benchmark's code (this process's CPU time, one thread,
batch 16 by default, median of 3), so the ranking does not depend on what else the machine was doing during the evals.
Writes a markdown table to stdout and a PNG scatter (Pillow only): Fréchet / floor against ms/image.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from djepa_core.assets import default_image_checkpoint
from djepa_core.checkpoint import load_generator
from djepa_core.fastpath import FastPath
from djepa_core.pipeline import ImageGenerator
from djepa_core.profiling.flops import matmul_rate
from djepa_core.profiling.sampler import bench_case


def plot(points: list[tuple[str, float, float]], path: Path, batch: int, target: float = 3.0) -> None:
    w, h, m = 900, 560, 70
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    xs = [p[1] for p in points]
    ys = [p[2] for p in points] + [target]
    x0, x1 = 0.0, max(xs) * 1.08
    y0, y1 = min(ys) * 0.9, max(ys) * 1.08

    def px(x: float, y: float) -> tuple[float, float]:
        return m + (x - x0) / (x1 - x0) * (w - 2 * m), h - m - (y - y0) / (y1 - y0) * (h - 2 * m)

    d.rectangle([m, m, w - m, h - m], outline="black")
    for i in range(6):
        xv, yv = x0 + (x1 - x0) * i / 5, y0 + (y1 - y0) * i / 5
        d.text((px(xv, y0)[0] - 12, h - m + 8), f"{xv:.0f}", fill="black")
        d.text((8, px(x0, yv)[1] - 6), f"{yv:.2f}", fill="black")
    ty = px(x0, target)[1]
    d.line([m, ty, w - m, ty], fill=(200, 0, 0), width=1)
    d.text((w - m - 150, ty - 14), "target: 3x floor", fill=(200, 0, 0))
    for name, x, y in points:
        cx, cy = px(x, y)
        d.ellipse([cx - 5, cy - 5, cx + 5, cy + 5], fill=(30, 90, 200))
        d.text((cx + 8, cy - 6 + (12 if name.startswith("8 ") else 0)), name, fill="black")
    d.text((w // 2 - 120, h - 30), f"ms/image (CPU time, 1 thread, batch {batch})", fill="black")
    d.text((m, 20), "djepa-digits: Frechet distance / train-vs-test floor (lower is better) vs cost", fill="black")
    img.save(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("reports", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=Path("bench/quality_vs_speed.png"))
    p.add_argument("--batch", type=int, default=16)
    args = p.parse_args()
    torch.set_num_threads(1)
    path = default_image_checkpoint()
    if path is None:
        raise SystemExit("this build ships no embedded image model")
    generators: dict[str, ImageGenerator] = {}
    rows = []
    with torch.inference_mode():
        for report in args.reports:
            model = next(iter(json.loads(report.read_text())["models"].values()))
            s = model["settings"]
            bf16 = model.get("fast_path", "fp32").startswith("bf16")
            precision = "bf16" if bf16 else "fp32"
            if precision not in generators:  # loaded once, and only for the precisions the reports ask for
                generators[precision] = load_generator(path).accelerate(FastPath("bf16" if bf16 else "fp32"))
            gen = generators[precision]
            settings = gen.settings(num_steps=s["num_steps"], head_steps=s["head_steps"], cfg_scale=s["cfg_scale"],
                                    ode_method=s.get("ode_method"), time_shift=s.get("time_shift"))
            r = bench_case(gen, "djepa-digits", report.stem, settings, args.batch, 3,
                           lambda: matmul_rate(timer=time.process_time), time.process_time)
            label = f"{s['num_steps']} AR x {s['head_steps']} {s.get('ode_method', 'euler')}"
            if s.get("time_shift") not in (None, 1.0):
                label += f" shift {s['time_shift']:g}"
            if precision != "fp32":
                label += f" {precision}"
            rows.append((label, r.ms_per_image, model["frechet_ratio"], model["accuracy_ratio"]))
    rows.sort(key=lambda r: r[1])
    print("| setting (cfg from the model) | ms/image | Fréchet / floor | accuracy / real |")
    print("|---|---:|---:|---:|")
    for label, ms, fr, acc in rows:
        print(f"| {label} | {ms:.1f} | {fr:.2f} | {acc:.3f} |")
    plot([(r[0], r[1], r[2]) for r in rows], args.out, args.batch)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
