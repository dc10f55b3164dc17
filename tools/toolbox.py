"""Built-in tools the playground may run: an allow-list of plain Python functions.

Nothing a model (or a browser) writes is ever executed: a call names a tool in this table,
its arguments are parsed with `json.loads` and checked against the tool's schema, and it
runs under a time limit with its result cut to a size limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import jsonschema

TIME_LIMIT_S = 5.0
MAX_RESULT_CHARS = 4000
_RUNNER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tool")


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict
    run: Callable[..., object]

    def spec(self) -> dict:
        """The tool as an OpenAI `tools` entry."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


@dataclass(frozen=True)
class ToolOutcome:
    ok: bool
    content: str


def _numbers(*names: str) -> dict:
    return {
        "type": "object",
        "properties": {n: {"type": "number"} for n in names},
        "required": list(names),
        "additionalProperties": False,
    }


_UNITS = {  # to SI base: metre, kilogram
    "m": 1.0,
    "km": 1000.0,
    "cm": 0.01,
    "mm": 0.001,
    "mi": 1609.344,
    "ft": 0.3048,
    "in": 0.0254,
    "kg": 1.0,
    "g": 0.001,
    "lb": 0.45359237,
    "oz": 0.028349523125,
}
_KINDS = {
    "m": "length",
    "km": "length",
    "cm": "length",
    "mm": "length",
    "mi": "length",
    "ft": "length",
    "in": "length",
    "kg": "mass",
    "g": "mass",
    "lb": "mass",
    "oz": "mass",
}
WEATHER = {  # fixed sample data: the playground must work offline
    "Shanghai": {"condition": "light rain", "temperature_c": 18, "humidity_pct": 82},
    "Beijing": {"condition": "sunny", "temperature_c": 12, "humidity_pct": 30},
    "London": {"condition": "overcast", "temperature_c": 9, "humidity_pct": 76},
    "San Francisco": {"condition": "fog", "temperature_c": 15, "humidity_pct": 88},
}


def _convert(value: float, from_unit: str, to_unit: str) -> dict:
    temperatures = {"C", "F", "K"}
    if {from_unit, to_unit} <= temperatures:
        celsius = {"C": value, "F": (value - 32) * 5 / 9, "K": value - 273.15}[from_unit]
        result = {"C": celsius, "F": celsius * 9 / 5 + 32, "K": celsius + 273.15}[to_unit]
    elif _KINDS.get(from_unit) and _KINDS.get(from_unit) == _KINDS.get(to_unit):
        result = value * _UNITS[from_unit] / _UNITS[to_unit]
    else:
        raise ValueError(f"cannot convert {from_unit} to {to_unit}")
    return {"value": round(result, 6), "unit": to_unit}


def _now(utc_offset_hours: float = 0) -> str:
    return (datetime.now(timezone.utc) + timedelta(hours=utc_offset_hours)).strftime("%Y-%m-%d %H:%M:%S")


def _weather(city: str) -> dict:
    if city not in WEATHER:
        raise ValueError(f"no sample data for {city!r}; known cities: {', '.join(WEATHER)}")
    return {"city": city, **WEATHER[city]}


UNIT_NAMES = sorted([*_UNITS, "C", "F", "K"])
BUILTIN: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool("add", "Add two numbers.", _numbers("a", "b"), lambda a, b: a + b),
        Tool("multiply", "Multiply two numbers.", _numbers("a", "b"), lambda a, b: a * b),
        Tool(
            "convert_units",
            "Convert a length, mass or temperature between units.",
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["value", "from_unit", "to_unit"],
                "properties": {
                    "value": {"type": "number"},
                    "from_unit": {"enum": UNIT_NAMES},
                    "to_unit": {"enum": UNIT_NAMES},
                },
            },
            _convert,
        ),
        Tool(
            "current_time",
            "The current date and time, at a UTC offset in hours.",
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {"utc_offset_hours": {"type": "number", "minimum": -12, "maximum": 14}},
            },
            _now,
        ),
        Tool(
            "get_weather",
            "Today's weather in a city (offline sample data).",
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["city"],
                "properties": {"city": {"type": "string"}},
            },
            _weather,
        ),
    )
}


def argument_problem(arguments: str, schema: dict, whose: str = "the") -> str | None:
    """Why a call's arguments (JSON text) do not fit a parameters schema, or None where they do."""
    try:
        parsed = json.loads(arguments or "{}")
    except (json.JSONDecodeError, RecursionError) as exc:
        return f"the arguments are not JSON: {exc}"
    try:
        jsonschema.validate(parsed, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "arguments"
        return f"the arguments do not fit {whose} schema at {where}: {exc.message}"
    return None


def run_tool(
    tool: Tool, arguments: str, time_limit_s: float = TIME_LIMIT_S, max_chars: int = MAX_RESULT_CHARS
) -> ToolOutcome:
    """Parse, check and run one call; every failure is an outcome, never an exception."""
    if problem := argument_problem(arguments, tool.parameters, f"{tool.name}'s"):
        return ToolOutcome(False, problem)
    future = _RUNNER.submit(tool.run, **json.loads(arguments or "{}"))
    try:
        result = future.result(timeout=time_limit_s)
    except FutureTimeout:
        return ToolOutcome(False, f"{tool.name} ran past its {time_limit_s:g} s limit")
    except Exception as exc:  # noqa: BLE001 - a failing tool is reported in the transcript
        return ToolOutcome(False, f"{tool.name} failed: {exc}")
    text = result if isinstance(result, str) else json.dumps(result)
    if len(text) > max_chars:
        text = text[:max_chars] + f"... [cut at {max_chars} characters]"
    return ToolOutcome(True, text)
