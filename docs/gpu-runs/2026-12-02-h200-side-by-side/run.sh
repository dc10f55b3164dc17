#!/usr/bin/env bash
# Side by side on an H200: each pair loaded together against each preset loaded alone, as one background job
# after stage.sh with the TurboMind bundle (`scripts/gpu_bundle/make_bundle.sh --turbomind pytest-asyncio==1.5.0 psutil==7.1.1`):
#   COMMIT=<the commit sent> setsid nohup bash docs/gpu-runs/2026-12-02-h200-side-by-side/run.sh > /tmp/results/master.log 2>&1 &
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
# SmolLM2, real weights, the PyTorch engine (TurboMind aborted with KV int4 on head_dim 64)
python3 -m bench.side_by_side --dir bench/gpu_presets --pair pt-bf16 pt-kv4 --pair pt-bf16 pt-kvfp8 \
  --out $R/smollm2.md > $R/smollm2.log 2>&1
# the Llama-2-7B shape with RANDOM weights: memory and speed only, its replies are noise
python3 -m bench.random_llama /tmp/models/llama2-7b-random --shape 7b --tokenizer $SMOL > $R/llama2-7b-random.log 2>&1
python3 -m bench.side_by_side --dir bench/gpu_presets --pair tm-7b-cache04 tm-7b-kv4 --max-new-tokens 256 \
  --out $R/llama2-7b-random.md >> $R/llama2-7b-random.log 2>&1
touch $R/DONE
python3 -m pytest -m gpu -rs -p no:cacheprovider tests/test_lmdeploy_gpu.py -k min_p > $R/gpu-min-p.log 2>&1
touch $R/DONE2
