"""Every figure in the tables of README and its long version (docs/guide.md) comes from a committed raw
output under docs/.

Each table of figures is mapped to the files it was read from. A figure is backed when a number in
those files gives it as written: the same value rounded to the figure's decimals, in GiB from MiB,
or, for a ratio ("1.94x") or a difference ("-50.4 GiB"), two of their numbers divided or subtracted.
Any other table (options, endpoints, tests) holds no measured figure at all.
"""

import itertools
import re

import pytest

from tests.conftest import ROOT

RUNS = ROOT / "docs" / "gpu-runs"
OTHER_MODES, LADDER = RUNS / "2026-11-30-h200-kv-and-weight-modes", RUNS / "2026-11-30-h200-7b-ladder"
SOURCES = {
    "| preset | GPU memory after load | weights |": [
        LADDER / "tm-7b-ladder.md",
        LADDER / "tm-7b-awq.md",
    ],
    "| preset | what changes | measured |": [
        OTHER_MODES / "pt-7b.md",
        OTHER_MODES / "pt-7b-fp8w-prefix.md",
        OTHER_MODES / "quantize-7b.md",
        OTHER_MODES / "smollm2.md",
    ],
    "| each chat | one node | the fleet of two |": [
        RUNS / "2026-11-30-h200x2-fleet" / "fleet-tm-7b.md",
        RUNS / "2026-11-30-h200x2-run2" / "first-machine" / "fleet-long-32.md",
        RUNS / "2026-11-30-h200x2-run2" / "second-machine" / "fleet-long-32-5000.md",
    ],
}
# a measured figure: a number followed by its unit or a ratio's x
FIGURE = re.compile(r"(?<![\w.])([-+]?\d[\d,]*(?:\.\d+)?)\s*(x\b|GiB|MiB|tok/s|ms\b|%)")
NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")
MIB_PER_GIB = 1024


def readme_tables() -> dict[str, list[str]]:
    """Each table's rows under its header line, keyed by SOURCES' start of that line where it has one."""
    tables: dict[str, list[str]] = {}
    current = None
    text = "\n\n".join((ROOT / name).read_text(encoding="utf-8") for name in ("README.md", "docs/guide.md"))
    for line in text.splitlines():
        if line.startswith("|"):
            if current is None:
                key = next((start for start in SOURCES if line.startswith(start)), line)
                current = tables.setdefault(key, [])
            else:
                current.append(line)
        else:
            current = None
    return tables


def source_numbers(paths) -> list[float]:
    text = "\n".join(path.read_text(encoding="utf-8") for path in paths)
    return sorted({float(n.replace(",", "")) for n in NUMBER.findall(text)})


def backed(figure: str, unit: str, numbers: list[float]) -> bool:
    value = float(figure.replace(",", ""))
    decimals = len(figure.split(".")[1]) if "." in figure else 0

    def gives(candidate: float) -> bool:
        return round(candidate, decimals) == round(abs(value), decimals)

    scales = (1, 1 / MIB_PER_GIB) if unit == "GiB" else (1,)
    if any(gives(n * scale) for n in numbers for scale in scales):
        return True
    pairs = itertools.permutations([n for n in numbers if n], 2)
    if unit == "x" or unit == "%":
        return any(gives(a / b) or gives(100 * (a / b - 1)) for a, b in pairs)
    return figure.startswith(("-", "+")) and any(gives((a - b) * scale) for a, b in pairs for scale in scales)


@pytest.mark.parametrize("header", sorted(SOURCES))
def test_every_figure_of_a_results_table_is_in_its_raw_output(header):
    tables = readme_tables()
    assert header in tables, f"README and docs/guide.md no longer have the table {header!r}: update SOURCES"
    numbers = source_numbers(SOURCES[header])
    unbacked = [
        f"{figure} {unit} in: {row[:80]}"
        for row in tables[header][1:]
        for figure, unit in FIGURE.findall(row)
        if not backed(figure, unit, numbers)
    ]
    assert not unbacked, unbacked


def test_no_other_table_holds_a_measured_figure():
    figures = {
        header: FIGURE.findall("\n".join([header, *rows]))
        for header, rows in readme_tables().items()
        if header not in SOURCES
    }
    assert not {header: found for header, found in figures.items() if found}
