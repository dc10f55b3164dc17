#!/usr/bin/env bash
# What was most wanted of run.sh after its first machine was handed back mid-run (README.md here), on a second
# nvidia-h200-x2 machine after stage.sh with a TurboMind bundle and the proxy's wheels (.whl):
#   setsid nohup bash docs/gpu-runs/2026-11-30-h200x2-run2/run-part2.sh > /tmp/results/master.log 2>&1 &
# The fleet with longer documents first (the 3,500-word run had reached 1.68x), then the overhead, four rounds.
OVERHEAD_ROUNDS=4
source docs/gpu-runs/2026-11-30-h200x2-run2/steps.sh

nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv > $R/machine.txt
step "build the random 7B" python -m bench.random_llama $M/llama2-7b-random --shape 7b --tokenizer $M/SmolLM2-135M-Instruct > $R/build.log 2>&1
step "fleet, 32 chats, a document of 5,000 words each" fleet fleet-long-32-5000 --concurrency 32 --rounds 2 --document-words 5000
step "Gradio's own floor" python -m bench.gradio_transport > $R/gradio-transport.md 2>&1
overheads
step "fleet, 32 short chats" fleet fleet-short-32 --concurrency 32 --rounds 3
step "chat length against an api_server on GPU 0 (TurboMind, SmolLM2)" chat_length_on_gpu
touch $R/DONE
