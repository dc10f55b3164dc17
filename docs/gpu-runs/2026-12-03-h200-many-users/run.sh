#!/usr/bin/env bash
# Many users through one console on an H200 after the chat events stopped handing their inputs to threads
# for Gradio's preprocessing and the queue's routes were put first, beside the same console without that
# change (before.patch reverted, same job) and the raw pipeline on the same card; gradio_client at its
# defaults; page memory; then gpu cases not yet run and the eager-mode trade. One background job after
# stage.sh with the TurboMind bundle (`scripts/gpu_bundle/make_bundle.sh --turbomind pytest-asyncio==1.5.0
# psutil==7.1.1 yappi==1.7.6`):
#   COMMIT=<the commit sent> setsid nohup bash docs/gpu-runs/2026-12-03-h200-many-users/run.sh > /tmp/results/master.log 2>&1 &
# Each step is timed in steps.log; a step that fails is logged and the next one runs.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
R=/tmp/results M=/tmp/models
SMOL=$M/SmolLM2-135M-Instruct
mkdir -p $R
step() { echo "=== $(date +%T) $1" >> $R/steps.log; shift; "$@"; echo "    rc=$? at $(date +%T)" >> $R/steps.log; }
users() { out=$1; shift; python3 -m bench.many_users --engine turbomind --processes 8 "$@" --out $R/$out.md > $R/$out.log 2>&1; }
# the console as it was before the change: this tree with before.patch reverted
before() { out=$1; shift; (cd /tmp/before && PYTHONPATH=/tmp/site:/tmp/before python3 -m bench.many_users --engine turbomind --processes 8 "$@" --out $R/$out.md > $R/$out.log 2>&1); }
{
  echo "commit ${COMMIT:-unknown}"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
  nproc
  python3 -c "import sys, torch, lmdeploy, transformers, gradio; print(sys.version.split()[0], torch.__version__, lmdeploy.__version__, transformers.__version__, gradio.__version__)"
} > $R/machine.txt 2>&1
rm -rf /tmp/before && mkdir /tmp/before && tar --exclude=./.gpu -cf - . | tar xf - -C /tmp/before
(cd /tmp/before && patch -R -p1 -s < "$HERE/before.patch") >> $R/steps.log 2>&1
step "SmolLM2: pages and gradio_client" users smollm2-turbomind --model $SMOL --users 64 128 256 --tokens 64 256 --gradio-client
step "SmolLM2 before the change: pages" before smollm2-turbomind-before --model $SMOL --users 64 256 --tokens 64
step "build the random 7B" python3 -m bench.random_llama $M/llama2-7b-random --shape 7b --tokenizer $SMOL > $R/build-7b.log 2>&1
# the Llama-2-7B shape with RANDOM weights: speed only, its replies are noise
step "7B random: pages and gradio_client" users llama2-7b-random-turbomind --model $M/llama2-7b-random --users 64 128 256 --tokens 64 256 --gradio-client
step "7B random before the change: pages" before llama2-7b-random-turbomind-before --model $M/llama2-7b-random --users 256 --tokens 64
step "gpu tests: side by side, the memory breakdown, api_server metrics" timeout 420 python3 -m pytest -m gpu -rs -v -p no:cacheprovider tests/test_side_by_side_gpu.py "tests/test_presets_gpu.py::test_breakdown_fits_in_what_the_worker_holds" "tests/test_api_server_gpu.py::test_metrics_give_the_kv_cache_usage" > $R/gpu-tests.log 2>&1
step "SmolLM2: where the console's CPU goes at 256" users profiled-256 --model $SMOL --users 256 --tokens 64 --profile $R/console-profile-256.txt
step "eager mode against CUDA graphs" timeout 300 python3 -m bench.presets_table --dir bench/gpu_presets pt-bf16 pt-eager --prompts "short story" math --out $R/pt-eager > $R/pt-eager.log 2>&1
step "page memory (paced server, no model)" timeout 300 python3 -m bench.page_memory --out $R/page-memory.md > $R/page-memory.log 2>&1
touch $R/DONE
