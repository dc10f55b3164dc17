"""Every package the console's code imports is declared in requirements.txt (jsonschema,
xgrammar, safetensors, httpx and torch arrived only through other packages)."""

import ast
import re
import sys
from importlib.metadata import packages_distributions

from tests.conftest import ROOT

_SKIPPED = {".venv", "tests", "docs", ".git", ".gpu", ".whl"}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_modules() -> set[str]:
    modules = set()
    for path in ROOT.rglob("*.py"):
        if _SKIPPED & set(path.relative_to(ROOT).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    local = {path.name for path in ROOT.iterdir() if path.is_dir()} | {path.stem for path in ROOT.glob("*.py")}
    return {m for m in modules if m not in sys.stdlib_module_names and m not in local}


def _declared() -> set[str]:
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return {_normalized(re.split(r"[=<>!~\[ ;]", line.strip())[0]) for line in lines if line.strip()[:1].isalnum()}


def test_every_third_party_import_is_declared():
    distributions = packages_distributions()
    declared = _declared()
    missing = {
        module: distributions.get(module, [module])
        for module in _imported_modules()
        if not any(_normalized(name) in declared for name in distributions.get(module, [module]))
    }
    assert not missing, f"imported but not in requirements.txt: {missing}"
