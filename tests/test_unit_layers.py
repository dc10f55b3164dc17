"""The floors of docs/architecture.md hold: every import between the console's packages points down."""

import ast

from tests.conftest import ROOT
from tests.test_unit_repository import tracked_text_files

# docs/architecture.md: app -> ui/room -> compare/quantize -> console -> tools/presets -> backends/telemetry -> model_folders
FLOORS = {
    "model_folders": 1,
    "backends": 2,
    "telemetry": 2,
    "tools": 3,
    "presets": 3,
    "console": 4,
    "compare": 5,
    "quantize": 5,
    "ui": 6,
    "room": 6,
    "app": 7,
}


def imported_packages(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name.split(".")[0]) for alias in node.names)


def test_every_import_between_packages_points_down():
    upward = []
    for name, text in tracked_text_files():
        package = name.split("/")[0].removesuffix(".py")
        if not name.endswith(".py") or package not in FLOORS:
            continue
        for line, target in imported_packages(ast.parse(text)):
            if target in FLOORS and target != package and FLOORS[target] >= FLOORS[package]:
                upward.append(f"{name}:{line} imports {target}")
    assert not upward


def test_the_floors_are_the_packages_there_are():
    packages = {path.name for path in ROOT.iterdir() if (path / "__init__.py").is_file()} - {"tests", "bench"}
    assert packages | {"app"} == set(FLOORS)
