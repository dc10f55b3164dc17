#!/usr/bin/env bash
# The whole gpu tier on one commit (`make test-gpu`'s pytest line: skips listed with their reasons),
# as one background job on an nvidia-h200 after stage.sh with the TurboMind bundle
# (`scripts/gpu_bundle/make_bundle.sh --turbomind pytest-asyncio==1.5.0`):
#   COMMIT=<the commit sent> setsid nohup bash docs/gpu-runs/2026-12-02-h200-gpu-tier/run.sh > /tmp/results/master.log 2>&1 &
set -u
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
R=/tmp/results
mkdir -p $R
{
  echo "commit ${COMMIT:-unknown}"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
  nproc
  python3 -c "import sys, torch, lmdeploy, transformers, gradio; print(sys.version.split()[0], torch.__version__, lmdeploy.__version__, transformers.__version__, gradio.__version__)"
} > $R/machine.txt 2>&1
python3 -m pytest -m gpu -rs -v --durations=0 -p no:cacheprovider tests > $R/gpu-tier.log 2>&1
echo "rc=$?" >> $R/gpu-tier.log
touch $R/DONE
