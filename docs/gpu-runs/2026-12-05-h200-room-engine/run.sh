#!/usr/bin/env bash
# One background job on an nvidia-h200 after stage.sh with the TurboMind bundle
# (`scripts/gpu_bundle/make_bundle.sh --turbomind pytest-asyncio==1.5.0 psutil==7.1.1 yappi==1.7.6`):
#   COMMIT=<the commit sent> setsid nohup bash docs/gpu-runs/2026-12-05-h200-room-engine/run.sh > /tmp/results/master.log 2>&1 &
# A room on its own engine: `app.py --model M --engine turbomind --room-processes N`, the engine in the room's
# engine host, N page processes behind one address; each invocation of bench.many_users measures the raw
# pipeline on the same card once the console's processes have all ended.
# In the order of what matters most, since the device time may end before the last step:
# 1. SmolLM2, room of 4: 64, 128, 256 users, 64- and 256-token replies, pages and gradio_client.
# 2. The Llama-2-7B shape with RANDOM weights (speed only), room of 4, 256 users, 64- and 256-token replies.
# 3. The gpu tests of a room: its engine restarted by its host after a crash; a quantization asked on one process,
#    switched to from the other.
# 4. Side by side: SmolLM2 PyTorch bf16 beside KV fp8; the 7B shape cache 0.4 beside AWQ (made here).
# 5. SmolLM2 at 256 x 64: a room of 8, one process.
set -u
source scripts/gpu_bundle/job.sh
P=bench/gpu_presets

users() {  # users NAME MODEL PROCESSES USERS... -- TOKENS...
  local name=$1 model=$2 processes=$3; shift 3
  local counts=() tokens=()
  while [ "$1" != "--" ]; do counts+=("$1"); shift; done; shift
  tokens=("$@")
  timeout 600 python3 -m bench.many_users --engine turbomind --model "$model" --room-processes "$processes" \
    --processes 8 --users "${counts[@]}" --tokens "${tokens[@]}" --gradio-client --out $R/$name.md > $R/$name.log 2>&1
}

step "SmolLM2, room of 4" users smollm2-room4 $SMOL 4 64 128 256 -- 64 256
step "build the random 7B" python3 -m bench.random_llama $M/llama2-7b-random --shape 7b --tokenizer $SMOL > $R/build.log 2>&1
step "7B, room of 4" users 7b-room4 $M/llama2-7b-random 4 256 -- 64 256
step "gpu tests: a room's engine restarted by its host, a room quantizes" timeout 600 python3 -m pytest -p no:cacheprovider -q -m gpu \
  tests/test_faults_gpu.py tests/test_quantize_gpu.py -k "rooms_engine or a_room_quantizes" > $R/gpu-rooms.log 2>&1
step "SmolLM2: bf16 beside KV fp8 (PyTorch)" timeout 400 python3 -m bench.side_by_side --dir $P --pair pt-bf16 pt-kvfp8 \
  --max-new-tokens 256 --out $R/smollm2-pt-side-by-side.md > $R/smollm2-pt-side-by-side.log 2>&1
step "7B: AWQ (the console's Quantize job)" timeout 400 python3 -m bench.quantize_models \
  $M/llama2-7b-random:$M/llama2-7b-random-awq:128 --samples 8 --seqlen 512 --out $R/7b-awq.md > $R/7b-awq.log 2>&1
step "7B: cache 0.4 beside AWQ" timeout 400 python3 -m bench.side_by_side --dir $P --pair tm-7b-cache04 tm-7b-awq \
  --max-new-tokens 256 --out $R/7b-side-by-side.md > $R/7b-side-by-side.log 2>&1
step "SmolLM2, room of 8" users smollm2-room8 $SMOL 8 256 -- 64
step "SmolLM2, one process" users smollm2-room1 $SMOL 1 256 -- 64
touch $R/DONE
