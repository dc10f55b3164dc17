#!/usr/bin/env bash
# The room's router on the 2-core machine: 256 paced users through a room of 2, the router's own CPU in the
# table, and where it goes (py-spy on the router for the whole run). Then one process, for the table.
set -u
OUT=docs/cpu-runs/2026-12-04-room-router
{ git rev-parse --short HEAD; nproc; .venv/bin/python --version; } > $OUT/machine.txt
.venv/bin/python -m bench.many_users --paced --users 256 --tokens 64 --processes 2 --room-processes 2 \
  --out $OUT/room-of-2.md > $OUT/room-of-2.log 2>&1 &
bench=$!
router=""
for _ in $(seq 120); do
  member=$(pgrep -nf "$PWD/app.py --backend remote")
  if [ -n "$member" ]; then
    parent=$(ps -o ppid= -p "$member" | tr -d ' ')
    ps -o cmd= -p "$parent" | grep -q app.py && router=$parent && break
  fi
  sleep 1
done
# from the room's start to its end: the pages opening, the round, the server alone
.venv/bin/py-spy record -p "$router" -r 250 -f raw -o $OUT/router.raw > $OUT/py-spy.log 2>&1
wait $bench
.venv/bin/python -m bench.many_users --paced --users 256 --tokens 64 --processes 2 \
  --out $OUT/one-process.md > $OUT/one-process.log 2>&1
# where the router's busy samples went (its waits in select left out)
.venv/bin/python - "$OUT/router.raw" > $OUT/router-summary.txt <<'PY'
import sys
from collections import Counter

leaf, within = Counter(), Counter()
for line in open(sys.argv[1]):
    stack, _, count = line.rstrip().rpartition(" ")
    frames = stack.split(";")
    if "select (selectors.py" in frames[-1] or "block_thread" in stack:
        continue
    leaf[frames[-1]] += int(count)
    for frame in set(frames):
        within[frame] += int(count)
busy = sum(leaf.values())
print(f"busy samples: {busy} (250 a second)")
print("\nleaf functions:")
for frame, count in leaf.most_common(15):
    print(f"{count / busy:6.1%}  {frame}")
print("\nwithin (the router's steps and the event loop's connection work):")
for frame, count in within.most_common(200):
    if any(key in frame for key in ("router.py", "open_connection", "_accept_connection (")):
        print(f"{count / busy:6.1%}  {frame}")
PY
