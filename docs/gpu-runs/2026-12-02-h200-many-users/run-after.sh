#!/usr/bin/env bash
# After the header tick's outputs became plain values and min_p was declared: min_p on both LMDeploy engines,
# then 256 users through the console beside the raw pipeline again, as one background job after stage.sh:
#   COMMIT=<the commit sent> setsid nohup bash docs/gpu-runs/2026-12-02-h200-many-users/run-after.sh > /tmp/results/master.log 2>&1 &
set -u
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
R=/tmp/results
mkdir -p $R
echo "commit ${COMMIT:-unknown}" > $R/after-machine.txt
python3 -m pytest -m gpu -rs -v -p no:cacheprovider tests/test_lmdeploy_gpu.py -k min_p > $R/after-min-p.log 2>&1
python3 -m bench.many_users --model /tmp/models/SmolLM2-135M-Instruct --engine turbomind --users 256 --tokens 64 \
  --processes 8 --out $R/after-smollm2-256.md > $R/after-smollm2-256.log 2>&1
touch $R/DONE
