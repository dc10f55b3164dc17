# What run.sh and run-part2.sh share: the environment, where results go, and one function a kind of step.
# Sourced from the repository root on the GPU machine.
set -u
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
R=/tmp/results M=/tmp/models
mkdir -p $R
step() { echo "=== $(date +%T) $1" >> $R/steps.log; shift; "$@"; echo "    rc=$? at $(date +%T) ($*)" >> $R/steps.log; }
tests() { out=$1; shift; python -m pytest -m gpu -q -p no:cacheprovider -s "$@" > $R/$out.log 2>&1; }
fleet() { out=$1; shift; mkdir -p $R/$out; python -m bench.fleet_throughput --model $M/llama2-7b-random --nodes 2 \
  --max-new-tokens 256 --log-dir $R/$out --out $R/$out.md "$@" > $R/$out.log 2>&1; }
overhead() { out=$1; shift; mkdir -p $R/$out; python -m bench.chat_overhead --backend lmdeploy --concurrency 16 --rounds ${OVERHEAD_ROUNDS:-5} \
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

overheads() {  # 16 streams, both engines, 256- and 64-token replies, one at a time
  for engine in turbomind pytorch; do
    for tokens in 256 64; do
      step "overhead, $engine, 16 streams, $tokens tokens" overhead overhead-$engine-$tokens --engine $engine --max-new-tokens $tokens
    done
  done
}
