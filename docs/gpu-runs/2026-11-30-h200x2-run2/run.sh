#!/usr/bin/env bash
# The second two-H200 run of 2026-11-30, for what the fleet and sixteen-chat runs had left, as one background job on an
# nvidia-h200-x2 machine after stage.sh with a TurboMind bundle and the proxy's wheels (.whl):
#   setsid nohup bash docs/gpu-runs/2026-11-30-h200x2-run2/run.sh > /tmp/results/master.log 2>&1 &
# One step at a time (nothing shares the cores with a benchmark), the most wanted first:
#   - the two memory tests mended last time, on GPU 1 while GPU 0 builds the 7B (another process's memory
#     on the other card is what broke them);
#   - the fleet with 32 chats that keep a node busy (a document of 3,500 words each), then short chats at 32
#     and 96 with the remote backend's plain-JSON stream reader, then longer documents;
#   - 16 chats through the console with nothing else running, Gradio's own floor just before;
#   - a chat's cost at turn 1, 10 and 50 against an api_server on a GPU.
source docs/gpu-runs/2026-11-30-h200x2-run2/steps.sh

nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv > $R/machine.txt
python -c "import torch, lmdeploy, transformers, gradio; print(torch.__version__, lmdeploy.__version__, transformers.__version__, gradio.__version__)" >> $R/machine.txt 2>&1
(
  export CUDA_VISIBLE_DEVICES=1
  step "memory tests on GPU 1 while GPU 0 builds the 7B" tests tests-memory \
    tests/test_lmdeploy_gpu.py -k "gives_the_vram_back or handed_over_worker"
) &
(
  export CUDA_VISIBLE_DEVICES=0
  step "build the random 7B on GPU 0" python -m bench.random_llama $M/llama2-7b-random --shape 7b \
    --tokenizer $M/SmolLM2-135M-Instruct > $R/build.log 2>&1
)
wait
step "fleet, 32 chats, a document of 3,500 words each, TurboMind, 7B shape (random weights)" \
  fleet fleet-long-32 --concurrency 32 --rounds 3 --document-words 3500
step "Gradio's own floor" python -m bench.gradio_transport > $R/gradio-transport.md 2>&1
overheads
step "chat length against an api_server on GPU 0 (TurboMind, SmolLM2)" chat_length_on_gpu
step "fleet, 32 short chats" fleet fleet-short-32 --concurrency 32 --rounds 3
step "fleet, 32 chats, a document of 5,000 words each" fleet fleet-long-32-5000 --concurrency 32 --rounds 2 --document-words 5000
step "fleet, 96 short chats" fleet fleet-short-96 --concurrency 96 --rounds 2
touch $R/DONE
