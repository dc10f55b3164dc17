#!/usr/bin/env bash
# One background job on an nvidia-h200 after stage.sh with the TurboMind bundle
# (`scripts/gpu_bundle/make_bundle.sh --turbomind pytest-asyncio==1.5.0 psutil==7.1.1 yappi==1.7.6`):
#   COMMIT=<the commit sent> setsid nohup bash docs/gpu-runs/2026-12-04-h200-ttft-breakdown/run.sh > /tmp/results/master.log 2>&1 &
# 1. SmolLM2, 64/128/256 users, 64-token replies, then 256 twice more: where a page's TTFT goes
#    (question painted, TTFT inside the console, the rest).
# 2. The Llama-2-7B shape with RANDOM weights (speed and memory only; its replies are noise): many users
#    through the console at this commit; AWQ made by the console's Quantize job, then bf16 (cache 0.4) and
#    AWQ side by side, side B's load stage by stage alone, beside A and again.
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
    --out $R/smollm2-$name.md > $R/smollm2-$name.log 2>&1
}
step "SmolLM2 64, 128, 256 x 64" smol 1 64 128 256
step "SmolLM2 256 x 64 (2)" smol 2 256
step "SmolLM2 256 x 64 (3)" smol 3 256

step "build the random 7B" python3 -m bench.random_llama $M/llama2-7b-random --shape 7b --tokenizer $SMOL > $R/build.log 2>&1
step "7B: 64, 128, 256 users, 64- and 256-token replies" timeout 480 python3 -m bench.many_users --engine turbomind \
  --processes 8 --model $M/llama2-7b-random --users 64 128 256 --tokens 64 256 --gradio-client \
  --out $R/7b-many-users.md > $R/7b-many-users.log 2>&1
step "7B: AWQ (the console's Quantize job)" timeout 400 python3 -m bench.quantize_models \
  $M/llama2-7b-random:$M/llama2-7b-random-awq:128 --samples 8 --seqlen 512 --out $R/7b-awq.md > $R/7b-awq.log 2>&1
step "7B: bf16 and AWQ side by side" timeout 400 python3 -m bench.side_by_side --dir $P --pair tm-7b-cache04 tm-7b-awq \
  --max-new-tokens 256 --out $R/7b-side-by-side.md > $R/7b-side-by-side.log 2>&1
touch $R/DONE
