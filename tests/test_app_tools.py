"""The Tools playground with the real SmolLM2 on the CPU, through the running console."""

import json

import pytest
from gradio_client import Client

from tools.scenarios import SCENARIOS

pytestmark = pytest.mark.app

ADD_AND_MULTIPLY = json.dumps(SCENARIOS["add and multiply: (3 + 5) x 2"].tools)


def tool_call(app_url, **arguments) -> dict:
    return Client(app_url, verbose=False).predict(api_name="/tool_call", **arguments)


def test_a_forced_call_runs_the_tool_and_sends_the_result_back(app_url):
    result = tool_call(
        app_url,
        prompt="What is 3 + 5?",
        tools_json=ADD_AND_MULTIPLY,
        tool_choice="function:add",
        max_rounds=2,
        mock_results="{}",
    )
    steps = result["steps"]
    call = next(s for s in steps if s["kind"] == "tool_call")
    assert call["name"] == "add" and json.loads(call["content"]) == {"a": 3, "b": 5}
    assert next(s for s in steps if s["kind"] == "tool_result")["content"] == "8"
    second_request = result["wire"][1]["request"]["messages"]
    assert second_request[-1] == {"role": "tool", "tool_call_id": "call_0", "content": "8"}


def test_a_schema_only_tool_uses_the_mock_result(app_url):
    scenario = SCENARIOS["your own tool (schema only)"]
    result = tool_call(
        app_url,
        prompt=scenario.prompt,
        tools_json=json.dumps(scenario.tools),
        tool_choice=scenario.tool_choice,
        max_rounds=1,
        mock_results=json.dumps(scenario.mock_results),
    )
    outcome = next(s for s in result["steps"] if s["kind"] == "tool_result")
    assert outcome["ok"] and "shipped" in outcome["content"]


@pytest.mark.parametrize(
    ("tools_json", "mock_results", "tool_prompt", "complaint"),
    [
        ("[{", "{}", "model", "Tools: not JSON"),
        (ADD_AND_MULTIPLY, "[1]", "model", "Mock results must be a JSON object"),
        (ADD_AND_MULTIPLY, "{}", "sideways", "tool_prompt is model or console, not 'sideways'"),
    ],
)
def test_bad_input_is_reported_and_nothing_runs(app_url, tools_json, mock_results, tool_prompt, complaint):
    result = tool_call(
        app_url,
        prompt="hi",
        tools_json=tools_json,
        tool_choice="auto",
        max_rounds=1,
        mock_results=mock_results,
        tool_prompt=tool_prompt,
    )
    assert complaint in result["error"]
