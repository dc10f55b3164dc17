#!/usr/bin/env bash
# Second, short H200 run of the session (after stage.sh): LMDeploy's token logprobs through the console's
# worker, and a SmolLM2 Compare with next-token agreement and the questions (agreement now runs last).
set -u
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
R=/tmp/results
mkdir -p $R
python -m pytest -m gpu -q -p no:cacheprovider -s tests/test_lmdeploy_gpu.py -k "token_probabilities and pytorch" > $R/gpu-logprobs.log 2>&1 &
python -m bench.presets_table --dir bench/gpu_presets pt-bf16 pt-kv8 --prompts math --no-perplexity --questions builtin --out $R/smollm2-questions > $R/smollm2-questions.log 2>&1
wait
touch $R/DONE2
