#!/usr/bin/env bash
# One background job on an nvidia-h200 after stage.sh with the TurboMind bundle
# (`scripts/gpu_bundle/make_bundle.sh --turbomind pytest-asyncio==1.5.0 psutil==7.1.1 yappi==1.7.6`):
#   COMMIT=<the commit sent> setsid nohup bash docs/gpu-runs/2026-12-04-h200-room/run.sh > /tmp/results/master.log 2>&1 &
# The room: `lmdeploy serve api_server` serves the engine; the console (--backend remote) in front of it as one
# process and as a room of 4 and 8 (--room-processes), alternating; each invocation also measures the
# api_server alone, and one measures the console on its in-process engine beside the raw pipeline.
# 1. SmolLM2, TurboMind: 64 and 256 users, 64-token replies, pages and gradio_client.
# 2. The Llama-2-7B shape with RANDOM weights (speed only): 256 users, 64-token replies, one process and 4.
set -u
source scripts/gpu_bundle/job.sh

serve() {  # serve MODEL LOG: api_server on 127.0.0.1:23333, TurboMind, until it answers
  python3 -m lmdeploy serve api_server "$1" --backend turbomind --server-name 127.0.0.1 --server-port 23333 \
    --log-level ERROR > "$2" 2>&1 &
  SERVER=$!
  python3 -c "
import time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen('http://127.0.0.1:23333/v1/models', timeout=2); break
    except OSError:
        time.sleep(1)
else:
    raise SystemExit('api_server did not answer in 300 s')"
}
room_round() {  # room_round NAME PROCESSES USERS...
  local name=$1 processes=$2; shift 2
  timeout 480 python3 -m bench.many_users --base-url http://127.0.0.1:23333/v1 --room-processes "$processes" \
    --processes 8 --users "$@" --tokens 64 --gradio-client --out $R/$name.md > $R/$name.log 2>&1
}

step "SmolLM2 api_server" serve $SMOL $R/smollm2-api-server.log
step "SmolLM2, one process (1)" room_round smollm2-room1-a 1 64 256
step "SmolLM2, room of 4 (1)" room_round smollm2-room4-a 4 64 256
step "SmolLM2, room of 8" room_round smollm2-room8 8 64 256
step "SmolLM2, room of 4 (2)" room_round smollm2-room4-b 4 256
step "SmolLM2, one process (2)" room_round smollm2-room1-b 1 256
kill $SERVER; sleep 5
step "SmolLM2: the in-process console beside the raw pipeline" timeout 300 python3 -m bench.many_users \
  --engine turbomind --processes 8 --model $SMOL --users 256 --tokens 64 --out $R/smollm2-raw.md > $R/smollm2-raw.log 2>&1

step "build the random 7B" python3 -m bench.random_llama $M/llama2-7b-random --shape 7b --tokenizer $SMOL > $R/build.log 2>&1
step "7B api_server" serve $M/llama2-7b-random $R/7b-api-server.log
step "7B, one process" room_round 7b-room1 1 256
step "7B, room of 4" room_round 7b-room4 4 256
kill $SERVER
touch $R/DONE
