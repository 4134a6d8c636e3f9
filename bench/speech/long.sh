#!/bin/bash
# the measured-alignment voice's training run (one thread, 60 min budget; same schedule as the shipped v2 run)
cd /work/main; source .venv/bin/activate
export OMP_NUM_THREADS=1
python -m djepa_core.speech_train /tmp/speech5k --preset djepa-speech-xs-aligned --steps 2400 --budget-seconds 3600 \
  --lr 8e-4 --warmup 100 --decay cosine --min-lr 0.05 --ema 0.995 --batch-size 16 --log-every 20 \
  --checkpoint-every 100 --cache runs/speech/feat5k.pt --out runs/speech-align/voice.safetensors
