#!/usr/bin/env bash
# 64, 128 and 256 users through one console on an H200 beside the raw pipeline, SmolLM2 (real weights), after
# the lean sessions (ui/lean_sessions.py). After stage.sh with the TurboMind bundle
# (`scripts/gpu_bundle/make_bundle.sh --turbomind pytest-asyncio==1.5.0 psutil==7.1.1 yappi==1.7.6`), on the
# commit sent (a9173df). The 64-token rounds ran as one background job, the 256-token rounds in the foreground
# of the next call: the same two commands as here.
set -u
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
R=/tmp/results SMOL=/tmp/models/SmolLM2-135M-Instruct
mkdir -p $R
timeout 500 python3 -m bench.many_users --engine turbomind --processes 8 --model $SMOL --users 64 128 256 --tokens 64 \
  --gradio-client --out $R/smollm2-turbomind.md > $R/smollm2-turbomind.log 2>&1
timeout 230 python3 -m bench.many_users --engine turbomind --processes 8 --model $SMOL --users 64 128 256 --tokens 256 \
  --gradio-client --out $R/smollm2-turbomind-256.md > $R/smollm2-turbomind-256.log 2>&1
