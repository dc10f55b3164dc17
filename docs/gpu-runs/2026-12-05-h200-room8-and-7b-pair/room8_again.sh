#!/usr/bin/env bash
# Run after run.sh on the same machine: the room of 8 once more, one round (256 users x 64 tokens, no
# gradio_client), stopped with SIGINT after 200 s (the console then stopped by the bench) in case a chat
# hangs as in run.sh's first step; the newest console log kept beside the result.
source scripts/gpu_bundle/job.sh
timeout -s INT 200 python3 -m bench.many_users --engine turbomind --model $SMOL --room-processes 8 --processes 8 \
  --users 256 --tokens 64 --out $R/smollm2-room8-again.md > $R/smollm2-room8-again.log 2>&1
echo "room of 8 again: rc=$?" >> $R/steps.log
cp "$(ls -td /tmp/many-users-*/ | head -1)console.log" $R/room8-again-console.log
