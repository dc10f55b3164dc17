#!/usr/bin/env bash
# Run after room8_again.sh on the same machine: the room of 8, two rounds each of 256 users x 64 and x 256
# tokens (no gradio_client), stopped with SIGINT after 300 s in case a chat hangs; console log kept.
source scripts/gpu_bundle/job.sh
timeout -s INT 300 python3 -m bench.many_users --engine turbomind --model $SMOL --room-processes 8 --processes 8 \
  --users 256 256 --tokens 64 256 --out $R/smollm2-room8-four-rounds.md > $R/smollm2-room8-four-rounds.log 2>&1
echo "room of 8, four rounds: rc=$?" >> $R/steps.log
cp "$(ls -td /tmp/many-users-*/ | head -1)console.log" $R/room8-four-rounds-console.log
