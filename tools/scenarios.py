"""Ready-made playground scenarios: a set of tools, a prompt and how the first call is chosen."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .toolbox import BUILTIN


@dataclass(frozen=True)
class Scenario:
    """The prompts say what the tool needs in its own words (`mi` to `km`, `utc_offset_hours 8`): the
    embedded SmolLM2-135M, held to the tool's schema by a forced call, then fills the arguments right, where
    asked as a person would ask it ("How many kilometres is 26.2 miles?") it wrote km -> m, and UTC+12 for
    Beijing. tests/test_cpu_backend.py runs each on it."""

    tools: list[dict]
    prompt: str
    tool_choice: str  # as the Tools tab's selector writes it: auto, none, required, function:NAME
    mock_results: dict
    small_model: str = ""  # what the embedded SmolLM2-135M still gets wrong, said beside the scenario


_ORDER_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Look up an order's status by its number.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}

SCENARIOS = {
    "add and multiply: (3 + 5) x 2": Scenario(
        [BUILTIN["add"].spec(), BUILTIN["multiply"].spec()],
        "What is (3 + 5) x 2? Add 3 and 5 first, then multiply the sum by 2: one tool call at a time.",
        "required",
        {},
        "SmolLM2-135M (the CPU default) calls add(3, 5) = 8 and then answers 8, without the second call: "
        "a chain of calls is past it. Step mode shows each round.",
    ),
    "weather": Scenario(
        [BUILTIN["get_weather"].spec()], "What is the weather in Shanghai today?", "function:get_weather", {}
    ),
    "unit conversion": Scenario(
        [BUILTIN["convert_units"].spec()], "Convert 26.2 mi to km.", "function:convert_units", {}
    ),
    "current time": Scenario(
        [BUILTIN["current_time"].spec()],
        "What time is it in Beijing? Beijing is at utc_offset_hours 8.",
        "function:current_time",
        {},
    ),
    "your own tool (schema only)": Scenario(
        [_ORDER_TOOL],
        "Look up order A-1042.",
        "function:lookup_order",
        {"lookup_order": json.dumps({"order_id": "A-1042", "status": "shipped", "eta": "Friday"})},
    ),
}


def tool_choice_value(selected: str) -> str | dict:
    """The selector's text as OpenAI's `tool_choice`."""
    if selected.startswith("function:"):
        return {"type": "function", "function": {"name": selected.removeprefix("function:")}}
    return selected
