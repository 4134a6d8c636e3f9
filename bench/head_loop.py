"""Before/after of the head-loop change (bench/RESULTS.md, "Redundant work removed from the head loop").

    python bench/head_loop.py djepa-s ar16-x100 8

Modes: `original` (the denoiser called as net(x, t, c) at every head step: condition and time embedded
per row and step, as before the change), `reference_arithmetic` (condition embedded once per AR step,
per-row time embeddings: bit-identical to the reference) and `fast` (the default: also the time embedding
once per step). CPU-time clock, one thread, guidance 3.0, median of 3 runs per mode, two rounds.
"""

import dataclasses
import sys
import time

import torch

from djepa_core.heads.mlp import DenoisingMLP
from djepa_core.pipeline import ImageGenerator
from djepa_core.presets import get_preset
from djepa_core.profiling.flops import matmul_rate
from djepa_core.profiling.sampler import CASES, bench_case


def main(preset: str, case: str, batch: int) -> None:
    torch.set_num_threads(1)
    gen = ImageGenerator.from_config(get_preset(preset))
    settings = gen.settings(cfg_scale=3.0, **CASES[case])
    bind = DenoisingMLP.bind
    with torch.inference_mode():
        for _ in range(2):
            for mode in ("original", "reference_arithmetic", "fast"):
                if mode == "original":
                    del DenoisingMLP.bind  # samplers then wrap the plain net(x, t, c) call
                try:
                    s = dataclasses.replace(settings, reference_arithmetic=mode != "fast")
                    r = bench_case(gen, preset, case, s, batch, 3, lambda: matmul_rate(timer=time.process_time),
                                   time.process_time)
                finally:
                    DenoisingMLP.bind = bind  # type: ignore[method-assign]
                g = r.gflop_per_image
                print(f"{preset} {case} batch {batch} {mode:22s} {r.ms_per_image:7.1f} ms/image  "
                      f"{g['total']:.3f} GFLOP/image (head {g['head']:.3f})  {r.matmul_fraction:.0%} of matmul rate")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
