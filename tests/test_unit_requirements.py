"""Every package the console's code imports is declared in requirements.txt (jsonschema,
xgrammar, safetensors, httpx and torch arrived only through other packages); what the benchmarks
alone import (a profiler), in requirements-dev.txt."""

import ast
import re
import sys
from importlib.metadata import packages_distributions

from tests.conftest import ROOT

_SKIPPED = {".venv", "tests", "docs", ".git", ".gpu", ".whl"}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_modules(benchmarks: bool) -> set[str]:
    """The third-party modules the console's code imports, or (`benchmarks`) bench/'s."""
    modules = set()
    for path in ROOT.rglob("*.py"):
        parts = set(path.relative_to(ROOT).parts)
        if _SKIPPED & parts or benchmarks != ("bench" in parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    local = {path.name for path in ROOT.iterdir() if path.is_dir()} | {path.stem for path in ROOT.glob("*.py")}
    return {m for m in modules if m not in sys.stdlib_module_names and m not in local}


def _declared(*files: str) -> set[str]:
    lines = [line for file in files for line in (ROOT / file).read_text(encoding="utf-8").splitlines()]
    return {_normalized(re.split(r"[=<>!~\[ ;]", line.strip())[0]) for line in lines if line.strip()[:1].isalnum()}


def _undeclared(modules: set[str], declared: set[str]) -> dict:
    distributions = packages_distributions()
    return {
        module: distributions.get(module, [module])
        for module in modules
        if not any(_normalized(name) in declared for name in distributions.get(module, [module]))
    }


def test_every_third_party_import_is_declared():
    missing = _undeclared(_imported_modules(benchmarks=False), _declared("requirements.txt"))
    assert not missing, f"imported but not in requirements.txt: {missing}"


def test_every_benchmark_import_is_declared():
    missing = _undeclared(_imported_modules(benchmarks=True), _declared("requirements.txt", "requirements-dev.txt"))
    assert not missing, f"imported by bench/ but in neither requirements file: {missing}"
