"""The gpu tier in about two thirds of its serial time on one card, every case once, one summary.

Phase 1 runs the cases that read no card-wide memory figure side by side, one pytest per test file, a few at
a time: the card holds several SmolLM2 engines at once, each taking its share of the memory still free.
Phase 2 then runs the `gpu_alone` cases one after another with nothing else on the card (what they assert
is the whole card's memory, or a capacity that follows from its free memory). A phase 1 case that ran out of
GPU memory is run once more, alone, after phase 2: LMDeploy's engines size their KV cache from the memory free
as they load, so an engine loading beside another can measure memory that the other takes the next moment.
Its verdict is the one alone, and the summary says it was retried. The summary counts both
phases against what `pytest -m gpu` collects, lists every skip with its reason, and the exit status is
non-zero when a case failed, one was never run, or none passed.

    python tests/run_gpu_tier.py [--logs DIR] [--streams N] [pytest options...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIDE_BY_SIDE = "gpu and not gpu_alone"
ALONE = "gpu_alone"


def pytest_command(markers: str, targets: list[str], junit: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-m", markers, "-rs", "-v", "-p", "no:cacheprovider",
            f"--junitxml={junit}", *extra, *targets]  # fmt: skip


def run_logged(command: list[str], log: Path) -> int:
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        code = subprocess.call(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        out.write(f"\n[{' '.join(command[3:5])}] exit {code} after {time.monotonic() - started:.0f} s\n")
    return code


def collected(markers: str, targets: list[str]) -> set[str]:
    """The node ids pytest would run: what the summary must account for."""
    command = [sys.executable, "-m", "pytest", "-m", markers, "--collect-only", "-q", "-p", "no:cacheprovider"]
    listing = subprocess.run([*command, *targets], cwd=ROOT, capture_output=True, text=True).stdout
    return {line.strip() for line in listing.splitlines() if "::" in line}


def by_cases(nodes: set[str]) -> list[str]:
    """The files that hold these cases, most cases first, so that the longest file does not start last."""
    per_file = Counter(node.split("::")[0] for node in nodes)
    return sorted(per_file, key=lambda file: (-per_file[file], file))


def outcomes(junit: Path) -> dict[str, tuple[str, str]]:
    """Each case's outcome and, for a skip or an expected failure, its reason."""
    if not junit.exists():  # pytest collected nothing from that file under these markers
        return {}
    results = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        path = case.get("classname", "").replace(".", "/")
        node = f"{path}.py::{case.get('name')}"
        outcome, reason = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, reason = "failed", child.get("message", "")
            elif child.tag == "skipped":
                xfail = child.get("type") == "pytest.xfail"
                outcome, reason = ("xfailed" if xfail else "skipped"), child.get("message", "")
        results[node] = (outcome, reason)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--logs", type=Path, help="where each pytest's log and report go (default: a new temporary folder)"
    )
    parser.add_argument("--streams", type=int, default=3, help="phase 1: test files run at once on the card")
    args, extra = parser.parse_known_args()
    logs = args.logs or Path(tempfile.mkdtemp(prefix="gpu-tier-"))
    logs.mkdir(parents=True, exist_ok=True)
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*_gpu.py"))
    expected = collected("gpu", files)

    def side_by_side(file: str) -> dict[str, tuple[str, str]]:
        name = Path(file).stem
        run_logged(pytest_command(SIDE_BY_SIDE, [file], logs / f"{name}.xml", extra), logs / f"{name}.log")
        return outcomes(logs / f"{name}.xml")

    results = {}
    with ThreadPoolExecutor(args.streams) as pool:
        for found in pool.map(side_by_side, by_cases(collected(SIDE_BY_SIDE, files))):
            results.update(found)
    retried = crowded_out(results)
    run_logged(pytest_command(ALONE, files, logs / "alone.xml", extra), logs / "alone.log")
    results.update(outcomes(logs / "alone.xml"))
    if retried:
        junit = logs / "retried-alone.xml"
        run_logged(pytest_command(SIDE_BY_SIDE, retried, junit, extra), logs / "retried-alone.log")
        results.update(outcomes(junit))
    return report(results, expected, logs, retried)


def crowded_out(results: dict[str, tuple[str, str]]) -> list[str]:
    """The phase 1 cases that failed for want of GPU memory, which another stream's engine may have taken."""
    return sorted(
        node for node, (outcome, reason) in results.items() if outcome == "failed" and "out of memory" in reason
    )


def report(results: dict[str, tuple[str, str]], expected: set[str], logs: Path, retried: Sequence[str] = ()) -> int:
    counts = Counter(outcome for outcome, _ in results.values())
    never_ran = sorted(expected - results.keys())
    print(f"gpu tier: {len(expected)} cases collected; logs in {logs}")
    for node, (outcome, reason) in sorted(results.items()):
        again = "  [ran out of GPU memory beside other engines; this is its run alone]" if node in retried else ""
        print(f"{outcome.upper():8} {node}" + (f"  ({reason})" if reason else "") + again)
    for node in never_ran:
        print(f"NOT RUN  {node}")
    print(", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) + f", {len(never_ran)} not run")
    if counts["failed"] or never_ran:
        return 1
    if not counts["passed"]:
        print("the gpu tier ran no test: every one was skipped")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
