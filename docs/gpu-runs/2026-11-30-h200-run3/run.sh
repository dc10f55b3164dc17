#!/usr/bin/env bash
# Sixteen chats at once after cutting Gradio's per-event and per-paint costs (commit 9c46218), against
# the console before them (cb0bfdb, `git archive cb0bfdb --prefix=baseline/`, unpacked in /tmp) in the same
# rounds. One nvidia-h200, after stage.sh with the TurboMind bundle:
#   setsid nohup bash docs/gpu-runs/2026-11-30-h200-run3/run.sh > /tmp/results/master.log 2>&1 &
OVERHEAD_ROUNDS=4
source docs/gpu-runs/2026-11-30-h200x2-run2/steps.sh
BASELINE=/tmp/baseline

nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv > $R/machine.txt
step "Gradio's own floor, served as app.py serves the console" python -m bench.gradio_transport > $R/gradio-transport.md 2>&1
for run in "turbomind 64" "pytorch 64" "turbomind 256" "pytorch 256"; do
  set -- $run
  step "overhead, $1, 16 streams, $2 tokens, beside the baseline" overhead overhead-$1-$2 --engine $1 --max-new-tokens $2 --baseline $BASELINE
done
step "the console on the GPU through tests.conftest.start_console" tests tests-console -k console_on_the_gpu tests/test_lmdeploy_gpu.py
step "Gradio's own floor again" python -m bench.gradio_transport > $R/gradio-transport-after.md 2>&1
step "chat length against an api_server on the GPU (TurboMind, SmolLM2)" chat_length_on_gpu
touch $R/DONE
