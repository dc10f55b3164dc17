#!/usr/bin/env bash
# A second machine of the same session (the first was handed back after profile.sh): the room of 8 for four
# rounds in one console (SmolLM2, 256 users x 64 tokens; the first token's spread between rounds), then a room
# of 12 for two rounds, each invocation with its raw pipeline's rounds. Started as run.sh was.
set -u
source scripts/gpu_bundle/job.sh
for processes in 8 12; do
  [ $processes = 8 ] && counts="256 256 256 256" || counts="256 256"
  step "SmolLM2, room of $processes, rounds of 256" timeout -s INT 400 python3 -m bench.many_users --engine turbomind \
    --model $SMOL --room-processes $processes --processes 8 --users $counts --tokens 64 \
    --out $R/rounds-room$processes.md > $R/rounds-room$processes.log 2>&1
  cp "$(ls -td /tmp/many-users-*/ | head -1)console.log" $R/rounds-room$processes-console.log
done
touch $R/DONE
