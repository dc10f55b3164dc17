#!/usr/bin/env bash
# The console before (898dd78: nothing frozen) and after (AFTER below: each process, the room's router included,
# freezes what it built before it serves) in alternating pairs on the 2-core machine: a room of 8 relaying bench/paced_server.py through its
# engine host, 256 users x 64 tokens, two rounds an invocation, every full garbage collection of the console's
# processes timed (bench.many_users --gc-pauses; both sides with bench/gc_watch as the later commit has it). Run
# from the checkout at the later commit.
set -eu
D=docs/cpu-runs/2026-12-05-gc-freeze
AFTER=$(git rev-parse --short HEAD)
rm -rf /tmp/gc-before && git worktree add -f /tmp/gc-before 898dd78 > /dev/null
cp bench/gc_watch/sitecustomize.py /tmp/gc-before/bench/gc_watch/
echo "before 898dd78, after $AFTER, $(date -u +%FT%TZ)" > $D/commits.txt
for pair in 1 2; do
  for side in before after; do
    root=$([ $side = before ] && echo /tmp/gc-before || echo $PWD)
    (cd $root && python -m bench.many_users --paced --room-processes 8 --through-host --users 256 256 --tokens 64 \
      --processes 2 --gc-pauses --out $OLDPWD/$D/$side-$pair.md > /dev/null 2>&1)
  done
done
git worktree remove --force /tmp/gc-before
