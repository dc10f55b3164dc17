"""Ready-made playground scenarios: a set of tools, a prompt and how the first call is chosen."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .toolbox import BUILTIN


@dataclass(frozen=True)
class Scenario:
    tools: list[dict]
    prompt: str
    tool_choice: str  # as the Tools tab's selector writes it: auto, none, required, function:NAME
    mock_results: dict


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
        "What is (3 + 5) x 2? Use the tools, one step at a time.",
        "required",
        {},
    ),
    "weather": Scenario(
        [BUILTIN["get_weather"].spec()], "What is the weather in Shanghai today?", "function:get_weather", {}
    ),
    "unit conversion": Scenario(
        [BUILTIN["convert_units"].spec()], "How many kilometres is 26.2 miles?", "function:convert_units", {}
    ),
    "current time": Scenario(
        [BUILTIN["current_time"].spec()], "What time is it in Beijing (UTC+8)?", "function:current_time", {}
    ),
    "your own tool (schema only)": Scenario(
        [_ORDER_TOOL],
        "Where is my order A-1042?",
        "function:lookup_order",
        {"lookup_order": json.dumps({"order_id": "A-1042", "status": "shipped", "eta": "Friday"})},
    ),
}


def tool_choice_value(selected: str) -> str | dict:
    """The selector's text as OpenAI's `tool_choice`."""
    if selected.startswith("function:"):
        return {"type": "function", "function": {"name": selected.removeprefix("function:")}}
    return selected
