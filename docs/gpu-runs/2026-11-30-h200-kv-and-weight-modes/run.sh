#!/usr/bin/env bash
# The H200 run of LMDeploy 0.18's other modes (KV fp8 / TurboQuant, fp8 and W8A8 weights, prefix caching), as one
# background job on the GPU machine after stage.sh (a bundle without TurboMind: every new mode is the
# PyTorch engine's):
#   setsid nohup bash docs/gpu-runs/2026-11-30-h200-kv-and-weight-modes/run.sh > /tmp/results/master.log 2>&1 &
# Every step logs to /tmp/results; a step that fails is logged and the next one runs. Steps that do
# not depend on each other share the GPU (each engine takes 0.4 of the memory free when it loads).
set -u
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
R=/tmp/results P=bench/gpu_presets M=/tmp/models D=docs/gpu-runs/2026-11-30-h200-kv-and-weight-modes
mkdir -p $R
step() { echo "=== $(date +%T) $1" >> $R/steps.log; shift; "$@"; echo "    rc=$? at $(date +%T) ($*)" >> $R/steps.log; }
table() { out=$1; shift; python -m bench.presets_table --dir $P "$@" --out $R/$out > $R/$out.log 2>&1; }

nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv > $R/machine.txt
python -c "import torch, lmdeploy, transformers, gradio; print(torch.__version__, lmdeploy.__version__, transformers.__version__, gradio.__version__)" >> $R/machine.txt 2>&1
(
  step "build the random 7B" python -m bench.random_llama $M/llama2-7b-random --shape 7b --tokenizer $M/SmolLM2-135M-Instruct > $R/build.log 2>&1
  step "W8A8 int8 of the random 7B" python -m bench.quantize_models $M/llama2-7b-random:$M/llama2-7b-random-w8a8-int8:w8a8-int8 --samples 8 --seqlen 512 --out $R/quantize-7b.md > $R/quantize.log 2>&1
) &
(
  step "gpu tests: prefix caching, W8A8 int8 on SmolLM2" python -m pytest -m gpu -q -p no:cacheprovider -s tests/test_presets_gpu.py tests/test_quantize_gpu.py -k "prefix or int8" > $R/gpu-tests.log 2>&1
  step "streaming probe" python $D/streaming_probe.py > $R/streaming-probe.jsonl 2> $R/streaming-probe.err
) &
step "SmolLM2: KV modes and fp8 weights" table smollm2 pt-bf16 pt-kvfp8 pt-kvturbo pt-fp8w --prompts "short story" math --questions builtin --second-turn
wait
step "7B: KV modes and W8A8" table pt-7b pt-7b-cache04 pt-7b-kvfp8 pt-7b-kvturbo pt-7b-w8a8-int8 --prompts "short story" math "long context" --load 128:1024:256 --second-turn
touch $R/DONE
