#!/usr/bin/env bash
# On the 2-core CI-like machine: this checkout (the commit named in README.md) beside a git worktree of the
# commit before the page-opening changes, rounds taken in turn in one run.
set -eu
git worktree add --detach /tmp/before 40576d7
python -m bench.page_opening --pages 128 --rounds 3 --beside /tmp/before --out docs/cpu-runs/2026-12-05-page-opening/page-opening.md \
  > docs/cpu-runs/2026-12-05-page-opening/run.log 2>&1
