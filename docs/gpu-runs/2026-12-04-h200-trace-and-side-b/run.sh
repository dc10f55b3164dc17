#!/usr/bin/env bash
# One background job on an nvidia-h200 after stage.sh with the TurboMind bundle
# (`scripts/gpu_bundle/make_bundle.sh --turbomind pytest-asyncio==1.5.0 psutil==7.1.1 yappi==1.7.6`):
#   COMMIT=<the commit sent> setsid nohup bash docs/gpu-runs/2026-12-04-h200-trace-and-side-b/run.sh > /tmp/results/master.log 2>&1 &
# 1. SmolLM2, 64/128/256 users, 64-token replies, the console traced (bench/traced_console.py): each chat's
#    steps through the console in the 256-user round; then 256 once more.
# 2. Side B loaded again reuses its worker: the gpu test, then the Llama-2-7B shape with RANDOM weights
#    (speed and memory only) cache 0.4 beside KV int4, side B's load stage by stage alone, beside A and again.
# Every step logs to /tmp/results/steps.log; a step that fails is logged and the next one runs.
set -u
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
R=/tmp/results M=/tmp/models SMOL=/tmp/models/SmolLM2-135M-Instruct P=bench/gpu_presets
mkdir -p $R
step() { echo "=== $(date +%T) $1" >> $R/steps.log; shift; "$@"; echo "    rc=$? at $(date +%T)" >> $R/steps.log; }
{
  echo "commit ${COMMIT:-unknown}"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
  nproc
  python3 -c "import sys, torch, lmdeploy, transformers, gradio; print(sys.version.split()[0], torch.__version__, lmdeploy.__version__, transformers.__version__, gradio.__version__)"
} > $R/machine.txt 2>&1

smol() {  # smol NAME USERS...
  name=$1; shift
  timeout 300 python3 -m bench.many_users --engine turbomind --processes 8 --model $SMOL --users "$@" --tokens 64 \
    --trace $R/smollm2-$name-trace.md --out $R/smollm2-$name.md > $R/smollm2-$name.log 2>&1
}
step "SmolLM2 64, 128, 256 x 64, traced" smol 1 64 128 256
step "SmolLM2 256 x 64, traced (2)" smol 2 256
step "gpu tests: side by side" timeout 300 python3 -m pytest -p no:cacheprovider -q -m gpu tests/test_side_by_side_gpu.py \
  > $R/gpu-side-by-side.log 2>&1
step "build the random 7B" python3 -m bench.random_llama $M/llama2-7b-random --shape 7b --tokenizer $SMOL > $R/build.log 2>&1
step "7B: cache 0.4 and KV int4 side by side" timeout 400 python3 -m bench.side_by_side --dir $P \
  --pair tm-7b-cache04 tm-7b-kv4 --max-new-tokens 256 --out $R/7b-side-by-side.md > $R/7b-side-by-side.log 2>&1
touch $R/DONE
