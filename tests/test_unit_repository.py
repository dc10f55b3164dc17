"""What the repository says stands on its own: no internal issue numbers (a reader cannot look them up,
so the fact they stand for is written instead) and nothing that points outside the repository."""

import re
import subprocess

from tests.conftest import ROOT

ISSUE_NUMBER = re.compile(r"\bissues?[ -]?#?\d+", re.IGNORECASE)
OUTSIDE = re.compile(r"\.\./shared\b")


def tracked_text_files():
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in listed.splitlines():
        path = ROOT / name
        if path.suffix in {".png", ".jpg", ".gguf"} or not path.is_file():
            continue
        try:
            yield name, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue


def lines_matching(pattern: re.Pattern) -> list[str]:
    return [
        f"{name}:{number}: {line.strip()[:100]}"
        for name, text in tracked_text_files()
        for number, line in enumerate(text.splitlines(), 1)
        if pattern.search(line)
    ]


def test_no_internal_issue_numbers():
    assert not lines_matching(ISSUE_NUMBER)


def test_nothing_points_outside_the_repository():
    assert not lines_matching(OUTSIDE)
