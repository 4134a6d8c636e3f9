#!/usr/bin/env bash
# GPU check of the trainer (shared/quality.md "Accelerator checks"): a short bf16 DDP training of djepa-b
# (212M parameters) under torchrun on synthetic latents, printing images/s. Under 8 minutes on one GPU.
# Needs only torch, numpy, safetensors, pyyaml, pillow, tqdm (the core dependencies; no Ray).
#   bash bench/gpu_check.sh                      # 1 GPU
#   NPROC=8 BATCH=1024 bash bench/gpu_check.sh   # all GPUs of a node
# CPU dry run of the same path (gloo, fp32): PRESET=djepa-tiny DEVICE=cpu STEPS=4 BATCH=8 bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
NPROC=${NPROC:-1}
PRESET=${PRESET:-djepa-b}
STEPS=${STEPS:-60}
BATCH=${BATCH:-128}
DEVICE=${DEVICE:-auto}
COMPILE=${COMPILE:-false}
RUN=${RUN_DIR:-$(mktemp -d /tmp/djepa-gpu-check.XXXXXX)}
"$PY" - <<'PY'
import torch
print(f"torch {torch.__version__}, cuda {torch.version.cuda}, devices {torch.cuda.device_count()}",
      f"({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "(no GPU: CPU dry run)")
PY
start=$(date +%s)
"$PY" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" -m djepa_core.cli train \
  --set preset="$PRESET" --set run_dir="$RUN" --set device="$DEVICE" --set precision=auto --set resume=none \
  --set data.kind=synthetic --set data.synthetic_size=4096 \
  --set loop.steps="$STEPS" --set loop.batch_size="$BATCH" --set loop.ema_decay=0.9999 --set loop.threads=0 \
  --set loop.compile="$COMPILE" \
  --set optim.blr=1e-4 --set optim.warmup_steps=10 \
  --set checkpoint.every=0 --set checkpoint.keep=1 \
  --set log.every=10 --set log.progress=false --set log.sample_classes=1 --set log.sample_per_class=1 \
  --set generator.sampling.num_steps=4 --set generator.sampling.head_steps=10
end=$(date +%s)
"$PY" - "$RUN" "$NPROC" "$PRESET" "$BATCH" "$((end - start))" <<'PY'
import csv, statistics, sys
run, nproc, preset, batch, wall = sys.argv[1:]
rows = list(csv.DictReader(open(f"{run}/metrics.csv")))
ips = [float(r["images_per_s"]) for r in rows[1:]] or [float(rows[-1]["images_per_s"])]  # first window: warm-up
last = rows[-1]
print(f"{preset} DDP x{nproc} (bf16 autocast on CUDA, fp32 on CPU), global batch {batch}: median {statistics.median(ips):.1f} images/s "
      f"(windows {', '.join(f'{v:.0f}' for v in ips)}); final loss {float(last['loss']):.4f} "
      f"(denoise {float(last['denoise']):.4f}, jepa {float(last['jepa']):.4f}); wall {wall}s incl. start-up")
PY
