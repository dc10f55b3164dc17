#!/usr/bin/env bash
# Run after run.sh on the same machine: where the room's engine host and one of its console processes spend
# their time while 256 users chat at once. The room of 8 (SmolLM2, 256 users x 64 tokens, two rounds) is
# started, and once its console says it runs, py-spy samples (250 Hz, not pausing them) the engine host with
# its children (the engine worker) and room process 1 for 100 s; raw stacks, idle ones left out.
source scripts/gpu_bundle/job.sh
SPY=$PWD/.gpu/spy/py-spy
before=$(ls -td /tmp/many-users-*/ 2> /dev/null | head -1)
python3 -m bench.many_users --engine turbomind --model $SMOL --room-processes 8 --processes 8 --users 256 256 \
  --tokens 64 --out $R/profile-room8.md > $R/profile-room8.log 2>&1 &
bench=$!
the_room_member() {  # the python3 process whose room member setting is $1
  for pid in $(pgrep python3); do
    tr '\0' '\n' < /proc/$pid/environ 2> /dev/null | grep -qx "LMDEPLOY_CONSOLE_ROOM_MEMBER=$1" && echo $pid
  done | head -1
}
newest() { ls -td /tmp/many-users-*/ 2> /dev/null | head -1; }
until [ "$(newest)" != "$before" ] && grep -qs "(8 processes)" "$(newest)console.log"; do sleep 1; done
host=$(the_room_member engine); member=$(the_room_member "0/8:.*")
echo "engine host $host, room process 1 $member" >> $R/steps.log
$SPY record --pid $host --subprocesses --nonblocking --rate 250 --duration 100 --format raw -o $R/profile-host.txt \
  > $R/profile-host.log 2>&1 & spies=$!
$SPY record --pid $member --nonblocking --rate 250 --duration 100 --format raw -o $R/profile-member.txt \
  > $R/profile-member.log 2>&1 & spies="$spies $!"
wait $bench; echo "profile: the bench's rc $?" >> $R/steps.log
wait $spies
cp "$(newest)console.log" $R/profile-console.log
