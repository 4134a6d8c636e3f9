#!/bin/bash
# the phoneme voice's training run (v4: phoneme-event symbols, measured phoneme durations; one thread,
# 60 min budget; the same schedule as bench/speech/long.sh; the duration model fit for 3,000 steps up front,
# as v3 was refit after its run)
cd /work/main; source .venv/bin/activate
export OMP_NUM_THREADS=1
mkdir -p runs/speech-phon
python -m djepa_core.speech_train /tmp/speech5k --preset djepa-speech-xs-phonemes --steps 2400 --budget-seconds 3600 \
  --lr 8e-4 --warmup 100 --decay cosine --min-lr 0.05 --ema 0.995 --batch-size 16 --log-every 20 \
  --checkpoint-every 100 --duration-steps 3000 --cache runs/speech/feat5k.pt --out runs/speech-phon/voice.safetensors
