#!/usr/bin/env bash
# One background job on an nvidia-h200 after stage.sh with the TurboMind bundle
# (`scripts/gpu_bundle/make_bundle.sh --turbomind pytest-asyncio==1.5.0 psutil==7.1.1 yappi==1.7.6`):
#   (COMMIT=<the commit sent> setsid nohup bash docs/gpu-runs/2026-12-05-h200-room8-and-7b-pair/run.sh > /tmp/results/master.log 2>&1 < /dev/null &)
# Most important first (the device time may end):
# 1. SmolLM2 256 x 64 and 256 x 256: a room of 8 (two rounds: a count given twice is two rounds), then a room of 4.
# 2. the crash-restart GPU test (failed on its own wording check last time).
# 3. the Llama-2-7B shape with RANDOM weights (speed and memory only): AWQ made by the Quantize job,
#    then cache 0.4 beside AWQ side by side.
set -u
source scripts/gpu_bundle/job.sh
P=bench/gpu_presets
step "SmolLM2, room of 8" users smollm2-room8 $SMOL 8 256 256 -- 64 256
step "SmolLM2, room of 4" users smollm2-room4 $SMOL 4 256 -- 64 256
step "gpu test: a room's engine restarted by its host" timeout 300 python3 -m pytest -p no:cacheprovider -q -m gpu \
  tests/test_faults_gpu.py -k rooms_engine > $R/gpu-crash-restart.log 2>&1
step "build the random 7B" python3 -m bench.random_llama $M/llama2-7b-random --shape 7b --tokenizer $SMOL > $R/build.log 2>&1
step "7B: AWQ (the console's Quantize job)" timeout 400 python3 -m bench.quantize_models \
  $M/llama2-7b-random:$M/llama2-7b-random-awq:128 --samples 8 --seqlen 512 --out $R/7b-awq.md > $R/7b-awq.log 2>&1
step "7B: cache 0.4 beside AWQ" timeout 400 python3 -m bench.side_by_side --dir $P --pair tm-7b-cache04 tm-7b-awq \
  --max-new-tokens 256 --out $R/7b-side-by-side.md > $R/7b-side-by-side.log 2>&1
touch $R/DONE
# On nvidia-h200-x2 / h100-x2 (when lent): side B on the second card
#   python3 -m pytest -p no:cacheprovider -q -m gpu tests/test_side_by_side_gpu.py tests/test_tp_gpu.py
#   and bench.side_by_side --pair tm-7b-cache04 tm-7b-awq (each side on its own card: compare load/memory with alone)
