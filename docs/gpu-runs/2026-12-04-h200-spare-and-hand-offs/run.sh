#!/usr/bin/env bash
# One background job on an nvidia-h200 after stage.sh with the TurboMind bundle
# (`scripts/gpu_bundle/make_bundle.sh --turbomind pytest-asyncio==1.5.0 psutil==7.1.1 yappi==1.7.6`):
#   COMMIT=<the commit sent> setsid nohup bash docs/gpu-runs/2026-12-04-h200-spare-and-hand-offs/run.sh > /tmp/results/master.log 2>&1 &
# 1. The Llama-2-7B shape with RANDOM weights (speed and memory only): cache 0.4 beside KV int4, side B's
#    first load now that a spare worker starts as a load takes the last one; B alone with B's reserve.
# 2. SmolLM2, 256 users, 64-token replies, with and without the hand-offs cut (the queue routes' log-in
#    check and the header tick in the event loop), alternating in one job ("before": this tree with
#    ui/__init__.py and ui/queue_routes.py as at 3bfc2d7, the reverse patch carried as .gpu/bin/handoffs_before.patch).
# 3. The 7B shape, 256 users, 64- and 256-token replies, pages and gradio_client.
# 4. SmolLM2 on the PyTorch engine, bf16 beside KV int4: reload with the reuse, B alone with B's reserve.
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

step "build the random 7B" python3 -m bench.random_llama $M/llama2-7b-random --shape 7b --tokenizer $SMOL > $R/build.log 2>&1
step "7B: cache 0.4 and KV int4 side by side" timeout 400 python3 -m bench.side_by_side --dir $P \
  --pair tm-7b-cache04 tm-7b-kv4 --max-new-tokens 256 --out $R/7b-side-by-side.md > $R/7b-side-by-side.log 2>&1

rm -rf /tmp/before && cp -a "$PWD" /tmp/before && (cd /tmp/before && patch -p1 < "$OLDPWD/.gpu/bin/handoffs_before.patch") > $R/before-patch.log 2>&1
smol_round() {  # smol_round NAME TREE
  (cd "$2" && PYTHONPATH=/tmp/site:$2 timeout 240 python3 -m bench.many_users --engine turbomind --processes 8 \
    --model $SMOL --users 256 --tokens 64 --out $R/smollm2-$1.md > $R/smollm2-$1.log 2>&1)
}
step "SmolLM2 256 x 64, after (1)" smol_round after-1 "$PWD"
step "SmolLM2 256 x 64, before (1)" smol_round before-1 /tmp/before
step "SmolLM2 256 x 64, before (2)" smol_round before-2 /tmp/before
step "SmolLM2 256 x 64, after (2)" smol_round after-2 "$PWD"
step "SmolLM2 256 x 64, after (3)" smol_round after-3 "$PWD"
step "SmolLM2 256 x 64, before (3)" smol_round before-3 /tmp/before

step "7B: 256 users, 64- and 256-token replies" timeout 360 python3 -m bench.many_users --engine turbomind \
  --processes 8 --model $M/llama2-7b-random --users 256 --tokens 64 256 --gradio-client \
  --out $R/7b-many-users.md > $R/7b-many-users.log 2>&1
step "SmolLM2 PyTorch: bf16 and KV int4 side by side" timeout 480 python3 -m bench.side_by_side --dir $P \
  --pair pt-bf16 pt-kv4 --out $R/smollm2-pt-side-by-side.md > $R/smollm2-pt-side-by-side.log 2>&1
touch $R/DONE
