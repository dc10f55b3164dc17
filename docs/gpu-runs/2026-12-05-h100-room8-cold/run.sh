#!/usr/bin/env bash
# The 2026-12-05 evening GPU run: the room of 8 on a fresh machine, where its first invocation of the day before
# (2026-12-05-h200-room8-and-7b-pair) had one chat that never completed; then the 7B shape (RANDOM weights: speed
# and memory only) and SmolLM2 at 64 and 128 users with a room of 8. Bundle: scripts/gpu_bundle/make_bundle.sh
# --turbomind pytest-asyncio==1.5.0 psutil==7.1.1 yappi==1.7.6, and py-spy 0.4 in .gpu/spy; after stage.sh's
# parts, on the GPU machine:
#   (COMMIT=<sha> setsid nohup bash docs/gpu-runs/2026-12-05-h100-room8-cold/run.sh > /tmp/results/master.log 2>&1 < /dev/null &)
# 1. The room of 8, three fresh consoles: the first on the fresh machine; before the second and third every
#    __pycache__ is removed, so that their processes start as slowly as on a fresh machine. While one runs past
#    180 s and 290 s (a round takes less), py-spy dumps every Python process's stacks. bench.many_users ends
#    a chat still open after 300 s as an error saying how far it got.
# 2. The room of 8 with the 7B shape at 256 users, 64 and 256 tokens.
# 3. The room of 8 with SmolLM2 at 64 and 128 users.
set -u
source scripts/gpu_bundle/job.sh
SPY=$PWD/.gpu/spy/py-spy
stacks_while_running() {  # NAME SECONDS...: py-spy dumps of every python3 process at each mark while a bench runs
  local name=$1 waited=0; shift
  for mark in "$@"; do
    sleep $((mark - waited)); waited=$mark
    pgrep -f bench.many_users > /dev/null || return 0
    for pid in $(pgrep python3); do
      echo "### pid $pid: $(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null)"
      timeout 20 $SPY dump --pid $pid 2>&1
    done > $R/$name-stacks-$mark.txt
  done
}
for k in 1 2 3; do
  [ $k -gt 1 ] && find /tmp/site $PWD -name __pycache__ -prune -exec rm -rf {} +
  stacks_while_running room8-$k 180 290 & watcher=$!
  step "SmolLM2, room of 8, fresh console $k" timeout -s INT 420 python3 -m bench.many_users --engine turbomind \
    --model $SMOL --room-processes 8 --processes 8 --users 256 --tokens 64 --out $R/room8-$k.md > $R/room8-$k.log 2>&1
  kill $watcher 2> /dev/null; wait $watcher 2> /dev/null
  cp "$(ls -td /tmp/many-users-*/ | head -1)console.log" $R/room8-$k-console.log
done
step "build the random 7B" python3 -m bench.random_llama $M/llama2-7b-random --shape 7b --tokenizer $SMOL > $R/build.log 2>&1
step "7B, room of 8" users 7b-room8 $M/llama2-7b-random 8 256 -- 64 256
step "SmolLM2, room of 8, 64 and 128 users" users smollm2-room8-64-128 $SMOL 8 64 128 -- 64 256
touch $R/DONE
