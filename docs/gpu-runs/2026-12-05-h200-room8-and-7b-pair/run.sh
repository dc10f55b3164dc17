#!/usr/bin/env bash
# The 2026-12-05 GPU run (second session that day): a room of 8 beside a room of 4 at 256 users on SmolLM2,
# the crash-restart GPU test, and the Llama-2-7B shape (RANDOM weights: speed and memory only) with its AWQ
# made by the Quantize job, loaded beside cache 0.4. Bundle: scripts/gpu_bundle/make_bundle.sh --turbomind
# pytest-asyncio==1.5.0 psutil==7.1.1 yappi==1.7.6; after stage.sh's parts, on the GPU machine:
#   (COMMIT=<sha> setsid nohup bash docs/gpu-runs/2026-12-05-h200-room8-and-7b-pair/run.sh > /tmp/results/master.log 2>&1 < /dev/null &)
# Most important first (the device time may end).
set -u
source scripts/gpu_bundle/job.sh
P=bench/gpu_presets
step "SmolLM2, room of 8" users smollm2-room8 $SMOL 8 256 256 -- 64 256
step "SmolLM2, room of 4" users smollm2-room4 $SMOL 4 256 256 -- 64 256
step "gpu test: a room's engine restarted by its host" timeout 300 python3 -m pytest -p no:cacheprovider -q -m gpu \
  tests/test_faults_gpu.py -k rooms_engine > $R/gpu-crash-restart.log 2>&1
step "build the random 7B" python3 -m bench.random_llama $M/llama2-7b-random --shape 7b --tokenizer $SMOL > $R/build.log 2>&1
step "7B: AWQ (the console's Quantize job)" timeout 400 python3 -m bench.quantize_models \
  $M/llama2-7b-random:$M/llama2-7b-random-awq:128 --samples 8 --seqlen 512 --out $R/7b-awq.md > $R/7b-awq.log 2>&1
step "7B: cache 0.4 beside AWQ" timeout 400 python3 -m bench.side_by_side --dir $P --pair tm-7b-cache04 tm-7b-awq \
  --max-new-tokens 256 --out $R/7b-side-by-side.md > $R/7b-side-by-side.log 2>&1
step "SmolLM2, one process" users smollm2-room1 $SMOL 1 256 -- 64
touch $R/DONE
