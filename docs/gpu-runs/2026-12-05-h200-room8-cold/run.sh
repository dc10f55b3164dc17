#!/usr/bin/env bash
# The room of 8 on a fresh machine, three times (a fresh console each): its first invocation on a fresh
# machine had one chat that never completed (2026-12-05-h200-room8-and-7b-pair). bench.many_users now ends a
# chat after CHAT_DEADLINE_S as an error saying how far it got. SmolLM2 (real weights), 256 users x 64 tokens.
#   (COMMIT=<sha> setsid nohup bash docs/gpu-runs/2026-12-05-h200-room8-cold/run.sh > /tmp/results/master.log 2>&1 < /dev/null &)
set -u
source scripts/gpu_bundle/job.sh
for k in 1 2 3; do
  step "SmolLM2, room of 8, fresh console $k" timeout -s INT 420 python3 -m bench.many_users --engine turbomind \
    --model $SMOL --room-processes 8 --processes 8 --users 256 --tokens 64 --out $R/room8-$k.md > $R/room8-$k.log 2>&1
  cp "$(ls -td /tmp/many-users-*/ | head -1)console.log" $R/room8-$k-console.log
done
touch $R/DONE
