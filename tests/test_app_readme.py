"""README's endpoint table against the running app's API, so that the two cannot drift apart."""

import re

import pytest
from gradio_client import Client

from tests.conftest import ROOT

pytestmark = pytest.mark.app

_ROW = re.compile(r"^\| `(/\w+)` \| (.*?) \|", re.MULTILINE)
_PARAMETER = re.compile(r"(?:^|, )`(\w+)(?:=[^`]*)?`")


def readme_endpoints() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## API endpoints") : text.index("## Tests")]
    endpoints = {}
    for name, cell in _ROW.findall(section):
        cell = re.sub(r"\([^)]*\)", "", cell).split(";")[0]  # asides and "admins only" aside
        endpoints[name] = _PARAMETER.findall(cell.strip())
    return endpoints


def test_readme_names_every_endpoint_and_its_parameters_as_the_app_does(app_url):
    api = Client(app_url, verbose=False).view_api(return_format="dict", print_info=False)["named_endpoints"]
    documented = readme_endpoints()
    public = {name for name in api if not name.startswith("/lambda")}
    assert set(documented) == public
    for name, parameters in documented.items():
        assert parameters == [p["parameter_name"] for p in api[name]["parameters"]], name
