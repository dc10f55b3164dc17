#!/usr/bin/env bash
# Many users through one console on an H200, beside the raw pipeline on the same card, as one background
# job after stage.sh with the TurboMind bundle
# (`scripts/gpu_bundle/make_bundle.sh --turbomind pytest-asyncio==1.5.0 yappi==1.7.6 psutil==7.1.1`):
#   COMMIT=<the commit sent> setsid nohup bash docs/gpu-runs/2026-12-02-h200-many-users/run.sh > /tmp/results/master.log 2>&1 &
set -u
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
R=/tmp/results
mkdir -p $R
SMOL=/tmp/models/SmolLM2-135M-Instruct
{
  echo "commit ${COMMIT:-unknown}"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
  nproc
  python3 -c "import sys, torch, lmdeploy, transformers, gradio; print(sys.version.split()[0], torch.__version__, lmdeploy.__version__, transformers.__version__, gradio.__version__)"
} > $R/machine.txt 2>&1
python3 -m bench.many_users --model $SMOL --engine turbomind --users 64 128 256 --tokens 64 256 --processes 8 \
  --out $R/smollm2-turbomind.md > $R/smollm2-turbomind.log 2>&1
python3 -m bench.many_users --model $SMOL --engine turbomind --users 256 --tokens 64 --processes 8 \
  --profile $R/console-profile-256.txt --out $R/profiled-256.md > $R/profiled-256.log 2>&1
python3 -m bench.random_llama /tmp/models/llama2-7b-random --shape 7b --tokenizer $SMOL > $R/llama2-7b-random.log 2>&1
python3 -m bench.many_users --model /tmp/models/llama2-7b-random --engine turbomind --users 64 256 --tokens 64 --processes 8 \
  --out $R/llama2-7b-random-turbomind.md >> $R/llama2-7b-random.log 2>&1
touch $R/DONE
