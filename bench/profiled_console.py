"""The console (`app.py`, same arguments) with a CPU profiler (yappi) that a benchmark turns on and off.

    python bench/profiled_console.py --model ... --server-port 7860     # then: kill -USR1 PID; ...; kill -USR2 PID

SIGUSR1 starts profiling every thread's CPU time; SIGUSR2 stops it and writes the functions by total
and by own CPU time to $CONSOLE_PROFILE (`bench.many_users --profile` sends both around a round).
yappi costs the console several times its CPU while on: the profile gives where the time goes, the
benchmark's figures come from a run without it.
"""

import os
import runpy
import signal
import sys
from pathlib import Path

import yappi

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = {0: ("name", 100), 1: ("ncall", 10), 2: ("tsub", 8), 3: ("ttot", 8), 4: ("tavg", 8)}
SHOWN = 80


def _start(*_) -> None:
    yappi.clear_stats()
    yappi.set_clock_type("cpu")
    yappi.start(builtins=False, profile_threads=True)


def _write(*_) -> None:
    yappi.stop()
    stats = yappi.get_func_stats()
    with open(os.environ["CONSOLE_PROFILE"], "w", encoding="utf-8") as out:
        for order in ("ttot", "tsub"):
            out.write(f"\n## The {SHOWN} functions with the most CPU seconds ({order})\n")
            stats.sort(order).print_all(out=out, columns=COLUMNS, limit=SHOWN)


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _write)
    sys.path.insert(0, str(ROOT))
    sys.argv = [str(ROOT / "app.py"), *sys.argv[1:]]
    runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
