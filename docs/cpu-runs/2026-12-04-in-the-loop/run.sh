#!/usr/bin/env bash
# alternating before/after, 256 paced users, 64-token replies, traced
R=/tmp/loop-runs
round() { (cd $2 && timeout 600 .venv/bin/python -m bench.many_users --paced --users 256 --tokens 64 --processes 2 --trace $R/$1-trace.md --out $R/$1.md > $R/$1.log 2>&1); echo "$1 rc=$?" >> $R/steps.log; }
round after-1 /work/main
round before-1 /tmp/before
round before-2 /tmp/before
round after-2 /work/main
round after-3 /work/main
round before-3 /tmp/before
touch $R/DONE
