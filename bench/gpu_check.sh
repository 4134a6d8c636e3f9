#!/usr/bin/env bash
# GPU check (shared/quality.md "Accelerator checks"), under 8 minutes on one GPU, printing every GPU figure:
#  1. the trainer: a short bf16 DDP training of djepa-b (212M parameters) under torchrun on synthetic latents;
#  2. the trainer step alone (`djepa bench train`): images/s and MFU of djepa-b, bf16 autocast;
#  3. the sampler (`djepa bench sampler`): djepa-b with guidance at 64 AR steps, batch 256 (goal < 20 ms/image;
#     the paper: 43 ms/image on an H800): fp32, bf16 autocast, bf16 + torch.compile, bf16 + compile with CUDA
#     graphs (reduce-overhead), reference (100 DDPM steps) and fewer AR steps. SKIP_COMPILE=1 skips the compiles;
#  4. continuous against static batching (bench/open_loop.py, issue 11): Poisson arrivals at 25% and 50% of a
#     full static batch's rate, in-process (the GPU machine has no Ray), then the step's cost on this GPU fitted as
#     fixed + per image (bench/queue_model.py --measure) and the p99 ratio the queueing model expects from it.
#     SKIP_BATCHING=1 skips both.
# Steps 2-3 need only torch, numpy and safetensors; step 1 also pyyaml, pillow and tqdm: on a machine without
# them and without internet, carry wheels (pip download --only-binary=:all: --python-version 3.12 pyyaml pillow
# tqdm -d bench/wheels) and they are installed from there; SKIP_TRAIN=1 skips step 1.
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
if [ "${SKIP_TRAIN:-0}" != 1 ] && ! "$PY" -c "import yaml, PIL, tqdm" 2>/dev/null && [ -d bench/wheels ]; then
  "$PY" -m pip install --quiet --no-index --find-links bench/wheels pyyaml pillow tqdm || true
fi
if [ "${SKIP_TRAIN:-0}" != 1 ]; then
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
fi
DEV=$([ "$DEVICE" = auto ] && "$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')" || echo "$DEVICE")
echo "== trainer step alone (djepa bench train)"
"$PY" -m djepa_core.cli bench train --preset "$PRESET" --batch "${TRAIN_BATCH:-64}" --steps 10 --warmup 3 --device "$DEV"
echo "== sampler (djepa bench sampler): plain fp32, then the fast paths of djepa_core/fastpath.py"
SB=${SAMPLE_BATCH:-256}
"$PY" -m djepa_core.cli bench sampler --presets "$PRESET" --cases ref-64x100,ar16-x100 --cfg 3.0 \
  --batch "$SB" --repeats 2 --device "$DEV"
"$PY" -m djepa_core.cli bench sampler --presets "$PRESET" --cases ref-64x100,ar16-x100 --cfg 3.0 \
  --batch "$SB" --repeats 2 --device "$DEV" --precision bf16
if [ "${SKIP_COMPILE:-0}" != 1 ]; then
  for mode in default reduce-overhead; do   # reduce-overhead: CUDA graphs of the compiled head and backbone
    "$PY" -m djepa_core.cli bench sampler --presets "$PRESET" --cases ref-64x100 --cfg 3.0 \
      --batch "$SB" --repeats 2 --device "$DEV" --precision bf16 --compile all --compile-mode "$mode"
  done
fi
if [ "${SKIP_BATCHING:-0}" != 1 ]; then   # issue 11 where a step's cost barely grows with its batch
  echo "== continuous against static batching in-process (bench/open_loop.py: Poisson arrivals, no Ray)"
  "$PY" bench/open_loop.py --preset "$PRESET" --device "$DEV" --precision "$([ "$DEV" = cuda ] && echo bf16 || echo fp32)" \
    --batch "${SERVE_BATCH:-32}" --loads "${LOADS:-0.25,0.5}" --seconds "${SERVE_SECONDS:-15}"
  echo "== a step's cost against its images, and the p99 ratio it allows (bench/queue_model.py --measure)"
  "$PY" bench/queue_model.py --measure --preset "$PRESET" --device "$DEV" \
    --precision "$([ "$DEV" = cuda ] && echo bf16 || echo fp32)" --sizes 1,2,4,8,16,32 --repeats 5 \
    --batch "${SERVE_BATCH:-32}" --loads 0.1,0.25,0.5 --waits 0.05,0.25 --seconds 120 --seeds 10
fi
