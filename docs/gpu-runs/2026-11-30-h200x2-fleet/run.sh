#!/usr/bin/env bash
# The two-H200 run of the Fleet (the Fleet: two api_servers behind LMDeploy's proxy, 32 chats through
# the console) and what earlier runs had left on a GPU, as one background job on an nvidia-h200-x2
# machine after stage.sh with a TurboMind bundle, with the proxy's packages carried as wheels (.whl):
#   setsid nohup bash docs/gpu-runs/2026-11-30-h200x2-fleet/run.sh > /tmp/results/master.log 2>&1 &
# After the fleet (both GPUs), two tracks run side by side, one a GPU: A the console's streaming
# overhead (CPU-sensitive: it shares the 32 cores with track B) and the W8A8 fp8 load, B switching
# and the GPU tests. Each step logs to /tmp/results; a step that fails is logged and the next runs.
set -u
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
R=/tmp/results P=bench/gpu_presets M=/tmp/models
mkdir -p $R
step() { echo "=== $(date +%T) $1" >> $R/steps.log; shift; "$@"; echo "    rc=$? at $(date +%T) ($*)" >> $R/steps.log; }
overhead() { out=$1; shift; python -m bench.chat_overhead --backend lmdeploy --concurrency 16 --rounds 4 --log-dir $R/$out "$@" --out $R/$out.md > $R/$out.log 2>&1; }
switching() { out=$1; shift; python -m bench.preset_switching --dir $P "$@" --out $R/$out.md > $R/$out.log 2>&1; }
tests() { out=$1; shift; python -m pytest -m gpu -q -p no:cacheprovider -s "$@" > $R/$out.log 2>&1; }

nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv > $R/machine.txt
python -c "import torch, lmdeploy, transformers, gradio; print(torch.__version__, lmdeploy.__version__, transformers.__version__, gradio.__version__)" >> $R/machine.txt 2>&1
step "build the random 7B" python -m bench.random_llama $M/llama2-7b-random --shape 7b --tokenizer $M/SmolLM2-135M-Instruct > $R/build.log 2>&1
mkdir -p $R/fleet
step "fleet: two api_servers (one a GPU), 32 chats, TurboMind, 7B shape (random weights)" \
  python -m bench.fleet_throughput --model $M/llama2-7b-random --nodes 2 --concurrency 32 --rounds 3 \
  --max-new-tokens 256 --log-dir $R/fleet --out $R/fleet-tm-7b.md > $R/fleet-tm-7b.log 2>&1

track_a() {
  export CUDA_VISIBLE_DEVICES=0
  step "A gpu test: W8A8 int8 and fp8 quantized and loaded" tests tests-w8a8 tests/test_quantize_gpu.py -k w8a8
  step "A Gradio's own floor" python -m bench.gradio_transport > $R/gradio-transport.md 2>&1
  mkdir -p $R/overhead-tm-256 $R/overhead-pt-256 $R/overhead-tm-64 $R/overhead-pt-64
  step "A overhead, TurboMind, 16 streams, 256 tokens" overhead overhead-tm-256 --engine turbomind --max-new-tokens 256
  step "A overhead, PyTorch, 16 streams, 256 tokens" overhead overhead-pt-256 --engine pytorch --max-new-tokens 256
  step "A overhead, TurboMind, 16 streams, 64 tokens" overhead overhead-tm-64 --engine turbomind --max-new-tokens 64
  step "A overhead, PyTorch, 16 streams, 64 tokens" overhead overhead-pt-64 --engine pytorch --max-new-tokens 64
}
track_b() {
  export CUDA_VISIBLE_DEVICES=1
  step "B switching, TurboMind, SmolLM2 (the spare worker)" switching switch-tm tm-bf16 tm-kv8 --switches 6 --layers console raw
  step "B gpu tests: worker reuse and faults" tests tests-worker tests/test_lmdeploy_gpu.py tests/test_faults_gpu.py
  step "B switching, PyTorch, 7B shape (random weights)" switching switch-pt-7b pt-7b-bf16 pt-7b-kv8 --switches 4 --layers console raw
}
track_a > $R/track-a.log 2>&1 &
track_b > $R/track-b.log 2>&1 &
wait
touch $R/DONE
