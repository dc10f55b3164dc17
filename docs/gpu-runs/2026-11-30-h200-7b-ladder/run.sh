#!/usr/bin/env bash
# The H200 run of the 7B-shaped preset ladder, as one background job on the GPU machine (after stage.sh):
#   setsid nohup bash docs/gpu-runs/2026-11-30-h200-7b-ladder/run.sh > /tmp/results/master.log 2>&1 &
# Every step logs to /tmp/results; a step that fails is logged and the next one runs.
set -u
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
R=/tmp/results P=bench/gpu_presets M=/tmp/models
mkdir -p $R
LOAD=256:1024:256  # requests : prompt tokens : output tokens, all sent at once
PROMPTS=(--prompts "short story" math "long context")
step() { echo "=== $(date +%T) $1" >> $R/steps.log; shift; "$@"; echo "    rc=$? at $(date +%T)" >> $R/steps.log; }
table() { out=$1; shift; python -m bench.presets_table --dir $P "$@" "${PROMPTS[@]}" --load $LOAD --out $R/$out > $R/$out.log 2>&1; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $R/machine.txt
python -c "import torch, lmdeploy, transformers, gradio; print(torch.__version__, lmdeploy.__version__, transformers.__version__, gradio.__version__)" >> $R/machine.txt 2>&1
step "build the random 7B" python -m bench.random_llama $M/llama2-7b-random --shape 7b --tokenizer $M/SmolLM2-135M-Instruct > $R/build.log 2>&1
# AWQ (the console's Quantize job) beside the SmolLM2 gpu tests: 143 GB holds both, and no figure
# kept from the tests depends on speed
( step "AWQ of the random 7B" python -m bench.quantize_models $M/llama2-7b-random:$M/llama2-7b-random-awq:128 --samples 8 --seqlen 512 --out $R/quantize-7b.md > $R/quantize.log 2>&1 ) &
step "gpu tests: Compare on SmolLM2" env GPU_RESULTS_DIR=$R python -m pytest -m gpu tests/test_compare_gpu.py -q -p no:cacheprovider > $R/gpu-tests.log 2>&1
wait
step "TurboMind ladder" table tm-7b-ladder tm-7b-bf16 tm-7b-cache04 tm-7b-kv8 tm-7b-kv4
step "PyTorch ladder" table pt-7b-ladder pt-7b-cache04 pt-7b-kv8 pt-7b-kv4 pt-7b-awq
step "TurboMind AWQ" table tm-7b-awq tm-7b-cache04 tm-7b-awq
step "raw TurboMind" python -m bench.raw_engine $R/tm-7b-ladder.json --dir $P --presets tm-7b-cache04 tm-7b-kv4 --out $R/tm-7b-raw.md > $R/tm-7b-raw.log 2>&1
step "raw TurboMind AWQ" python -m bench.raw_engine $R/tm-7b-awq.json --dir $P --presets tm-7b-awq --out $R/tm-7b-awq-raw.md > $R/tm-7b-awq-raw.log 2>&1
step "raw PyTorch" python -m bench.raw_engine $R/pt-7b-ladder.json --dir $P --presets pt-7b-cache04 --out $R/pt-7b-raw.md > $R/pt-7b-raw.log 2>&1
touch $R/DONE
