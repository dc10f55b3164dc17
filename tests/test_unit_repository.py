"""What the repository says stands on its own: no internal issue numbers (a reader cannot look them up,
so the fact they stand for is written instead) and nothing that points outside the repository. And a
backend kind's behaviour stays with the kind: no code above backends/ asks for a kind by its name."""

import re
import subprocess

from tests.conftest import ROOT

ISSUE_NUMBER = re.compile(r"\bissues?[ -]?#?\d+", re.IGNORECASE)
OUTSIDE = re.compile(r"\.\./shared\b")
KIND_BY_NAME = re.compile(r"\b(kind|backend)\s*(==|!=|not in|in)\s*\(?\s*[\"'](lmdeploy|remote|cpu|none|auto)[\"']")


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


def lines_matching(pattern: re.Pattern, files=None) -> list[str]:
    return [
        f"{name}:{number}: {line.strip()[:100]}"
        for name, text in files or tracked_text_files()
        for number, line in enumerate(text.splitlines(), 1)
        if pattern.search(line)
    ]


def test_no_internal_issue_numbers():
    assert not lines_matching(ISSUE_NUMBER)


def test_nothing_points_outside_the_repository():
    assert not lines_matching(OUTSIDE)


def test_no_backend_kind_is_asked_for_by_name_above_backends():
    """`backends.BackendKind` carries what differs between kinds (the fields a preset may set, the
    engine card, where memory is read, whose tool parser runs, the commands that reproduce it)."""
    above = [(name, text) for name, text in tracked_text_files() if name.endswith(".py")]
    above = [(name, text) for name, text in above if not name.startswith(("backends/", "tests/"))]
    assert not lines_matching(KIND_BY_NAME, above)
