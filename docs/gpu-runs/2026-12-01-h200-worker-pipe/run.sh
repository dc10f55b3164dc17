#!/usr/bin/env bash
# the engine worker reads its requests on the engine's own event loop and sends its replies in
# batches (one pipe message a turn of that loop), against the console before it (2b8104a,
# `git archive 2b8104a --prefix=baseline/`, unpacked in /tmp) in the same rounds. One nvidia-h200, after
# stage.sh with the TurboMind bundle:
#   setsid nohup bash docs/gpu-runs/2026-12-01-h200-worker-pipe/run.sh > /tmp/results/master.log 2>&1 &
OVERHEAD_ROUNDS=4
source docs/gpu-runs/2026-11-30-h200x2-run2/steps.sh
BASELINE=/tmp/baseline

nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv > $R/machine.txt
step "the LMDeploy backend and its faults on the GPU, both engines" tests tests-lmdeploy tests/test_lmdeploy_gpu.py tests/test_faults_gpu.py
for run in "pytorch 64" "turbomind 64" "pytorch 256" "turbomind 256"; do
  set -- $run
  step "overhead, $1, 16 streams, $2 tokens, beside the baseline" overhead overhead-$1-$2 --engine $1 --max-new-tokens $2 --baseline $BASELINE
done
step "Gradio's own floor, served as app.py serves the console" python -m bench.gradio_transport > $R/gradio-transport.md 2>&1
touch $R/DONE
