#!/usr/bin/env bash
# The whole gpu tier on one commit as `make test-gpu` runs it (tests/run_gpu_tier.py: the cases that read no
# card-wide memory figure four test files at once, then the gpu_alone cases alone on the card), then, with
# the time left, 256 users through the console beside the raw pipeline (SmolLM2, 64-token replies). One
# background job on an nvidia-h200 after stage.sh with the TurboMind bundle
# (`scripts/gpu_bundle/make_bundle.sh --turbomind pytest-asyncio==1.5.0 psutil==7.1.1 yappi==1.7.6`):
#   COMMIT=<the commit sent> setsid nohup bash docs/gpu-runs/2026-12-03-h200-gpu-tier-whole/run.sh > /tmp/results/master.log 2>&1 &
set -u
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
R=/tmp/results SMOL=/tmp/models/SmolLM2-135M-Instruct
mkdir -p $R
step() { echo "=== $(date +%T) $1" >> $R/steps.log; shift; "$@"; echo "    rc=$? at $(date +%T)" >> $R/steps.log; }
{
  echo "commit ${COMMIT:-unknown}"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
  nproc
  python3 -c "import sys, torch, lmdeploy, transformers, gradio; print(sys.version.split()[0], torch.__version__, lmdeploy.__version__, transformers.__version__, gradio.__version__)"
} > $R/machine.txt 2>&1
step "the gpu tier" python3 tests/run_gpu_tier.py --streams 4 --logs $R/tier --durations=0 > $R/gpu-tier.log 2>&1
step "SmolLM2: 128 and 256 users, 64-token replies" timeout 600 python3 -m bench.many_users --engine turbomind --processes 8 --model $SMOL --users 128 256 --tokens 64 --gradio-client --out $R/smollm2-turbomind.md > $R/smollm2-turbomind.log 2>&1
touch $R/DONE
