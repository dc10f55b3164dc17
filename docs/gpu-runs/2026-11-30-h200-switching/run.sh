#!/usr/bin/env bash
# The H200 run of switch speed (: the engine worker reused across switches) and the
# GPU checks left from the run before (TurboMind logprobs, prefix caching and block counts, KV fp8 e5m2),
# as one background job on the GPU machine after stage.sh with a TurboMind bundle
# (`scripts/gpu_bundle/make_bundle.sh --turbomind pytest-asyncio==1.5.0`):
#   setsid nohup bash docs/gpu-runs/2026-11-30-h200-switching/run.sh > /tmp/results/master.log 2>&1 &
# Every step logs to /tmp/results and runs alone on the GPU (timings); a step that fails is logged
# and the next one runs. Most important first: the device time may end before the last step.
set -u
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
R=/tmp/results P=bench/gpu_presets M=/tmp/models
mkdir -p $R
step() { echo "=== $(date +%T) $1" >> $R/steps.log; shift; "$@"; echo "    rc=$? at $(date +%T)" >> $R/steps.log; }
switching() { out=$1; shift; python -m bench.preset_switching --dir $P "$@" --out $R/$out.md > $R/$out.log 2>&1; }
tests() { out=$1; shift; python -m pytest -m gpu -q -p no:cacheprovider -s "$@" > $R/$out.log 2>&1; }

nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv > $R/machine.txt
python -c "import torch, lmdeploy, transformers, gradio; print(torch.__version__, lmdeploy.__version__, transformers.__version__, gradio.__version__)" >> $R/machine.txt 2>&1
step "build the random 7B" python -m bench.random_llama $M/llama2-7b-random --shape 7b --tokenizer $M/SmolLM2-135M-Instruct > $R/build.log 2>&1
step "switching, TurboMind, SmolLM2" switching switch-tm tm-bf16 tm-kv8 --switches 6 --layers console console-fresh raw
step "switching, PyTorch, SmolLM2" switching switch-pt pt-bf16 pt-kv8 --switches 4 --layers console console-fresh raw
step "gpu tests: worker reuse, token logprobs on both engines" tests tests-worker tests/test_lmdeploy_gpu.py -k "handed_over or get_logits_is_not or token_probabilities or killed_worker"
step "gpu tests: prefix caching and blocks on TurboMind, KV fp8 e5m2, ten switches" tests tests-presets tests/test_presets_gpu.py -k "prefix or blocks or fp8_and_turbo or ten_switches"
step "switching, TurboMind, 7B shape (random weights)" switching switch-tm-7b tm-7b-bf16 tm-7b-kv8 --switches 4 --layers console raw
step "gpu tests: faults" tests tests-faults tests/test_faults_gpu.py
step "switching, PyTorch, 7B shape (random weights)" switching switch-pt-7b pt-7b-bf16 pt-7b-kv8 --switches 4 --layers console raw
touch $R/DONE
