#!/usr/bin/env bash
# After rounds.sh, same machine: the room of 8 twice more (a fresh console each, one round of 256 users x 64
# tokens), each console first given 16 short chats as the raw pipeline is before each round (--warm-up).
source scripts/gpu_bundle/job.sh
for k in 1 2; do
  step "SmolLM2, room of 8, warmed up $k" timeout -s INT 150 python3 -m bench.many_users --engine turbomind \
    --model $SMOL --room-processes 8 --processes 8 --users 256 --tokens 64 --warm-up \
    --out $R/warmed-room8-$k.md > $R/warmed-room8-$k.log 2>&1
done
touch $R/WARMED
