#!/usr/bin/env bash
# The second two-H200 run of 2026-11-30, for what issues 15 and 16 had left, as one background job on an
# nvidia-h200-x2 machine after stage.sh with a TurboMind bundle and the proxy's wheels (.whl):
#   setsid nohup bash docs/gpu-runs/2026-11-30-h200x2-run2/run.sh > /tmp/results/master.log 2>&1 &
# One step at a time (nothing shares the cores with a benchmark), the most wanted first:
#   - the two memory tests mended last time, on GPU 1 while GPU 0 builds the 7B (another process's memory
#     on the other card is what broke them);
#   - the fleet with 32 chats that keep a node busy (a document of 3,500 words each), then short chats at 32
#     and 96 with the remote backend's plain-JSON stream reader, then longer documents;
#   - 16 chats through the console with nothing else running, Gradio's own floor just before;
#   - a chat's cost at turn 1, 10 and 50 against an api_server on a GPU.
set -u
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
R=/tmp/results M=/tmp/models
mkdir -p $R
step() { echo "=== $(date +%T) $1" >> $R/steps.log; shift; "$@"; echo "    rc=$? at $(date +%T) ($*)" >> $R/steps.log; }
tests() { out=$1; shift; python -m pytest -m gpu -q -p no:cacheprovider -s "$@" > $R/$out.log 2>&1; }
fleet() { out=$1; shift; mkdir -p $R/$out; python -m bench.fleet_throughput --model $M/llama2-7b-random --nodes 2 \
  --max-new-tokens 256 --log-dir $R/$out --out $R/$out.md "$@" > $R/$out.log 2>&1; }
overhead() { out=$1; shift; mkdir -p $R/$out; python -m bench.chat_overhead --backend lmdeploy --concurrency 16 --rounds 4 \
  --log-dir $R/$out "$@" --out $R/$out.md > $R/$out.log 2>&1; }
chat_length_on_gpu() {
  CUDA_VISIBLE_DEVICES=0 python -m lmdeploy serve api_server $M/SmolLM2-135M-Instruct --server-name 127.0.0.1 \
    --server-port 23333 --backend turbomind --log-level ERROR > $R/chat-length-server.log 2>&1 &
  local server=$!
  for _ in $(seq 300); do
    python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:23333/v1/models')" 2> /dev/null && break
    sleep 1
  done
  python -m bench.chat_length --base-url http://127.0.0.1:23333/v1 --out $R/chat-length.md > $R/chat-length.log 2>&1
  local rc=$?
  kill $server; wait $server
  return $rc
}

nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv > $R/machine.txt
step "build the random 7B" python -m bench.random_llama $M/llama2-7b-random --shape 7b --tokenizer $M/SmolLM2-135M-Instruct > $R/build.log 2>&1
step "fleet, 32 chats, a document of 5,000 words each" fleet fleet-long-32-5000 --concurrency 32 --rounds 2 --document-words 5000
step "Gradio's own floor" python -m bench.gradio_transport > $R/gradio-transport.md 2>&1
for engine in turbomind pytorch; do
  for tokens in 256 64; do
    step "overhead, $engine, 16 streams, $tokens tokens" overhead overhead-$engine-$tokens --engine $engine --max-new-tokens $tokens
  done
done
step "fleet, 32 short chats" fleet fleet-short-32 --concurrency 32 --rounds 3
step "chat length against an api_server on GPU 0 (TurboMind, SmolLM2)" chat_length_on_gpu
touch $R/DONE
