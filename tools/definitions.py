"""Tool definitions as users write them: OpenAI `tools` JSON, checked with errors that point."""

from __future__ import annotations

import json
from dataclasses import dataclass

import jsonschema

from backends import Refusal

# Python's type names, as LMDeploy's own tools example and many tutorials write them ("type": "int"),
# for JSON Schema's; api_server takes them, so the console does too, and says what it read them as.
_TYPE_ALIASES = {
    "int": "integer",
    "float": "number",
    "str": "string",
    "bool": "boolean",
    "dict": "object",
    "list": "array",
}


class ToolDefinitionError(Refusal, ValueError):
    """A tools document that cannot be used; the message says what and where."""


@dataclass(frozen=True)
class ToolDefinitions:
    """Checked tools, and notes on what was read differently from how it was written."""

    tools: list[dict]
    notes: tuple[str, ...] = ()


def parse_tools(text: str) -> ToolDefinitions:
    """A JSON list of {"type": "function", "function": {"name", "description", "parameters"}}."""
    try:
        return _parse(text)
    except RecursionError as exc:
        raise ToolDefinitionError("the tools are nested too deeply to be a tool definition") from exc


def _parse(text: str) -> ToolDefinitions:
    if not isinstance(text, str | None):  # what a client sent where the page's editor sends text
        raise ToolDefinitionError(f"the tools are JSON text, not {type(text).__name__}")
    try:
        tools = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise ToolDefinitionError(f"not JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from exc
    if not isinstance(tools, list):
        raise ToolDefinitionError("the tools must be a JSON list of tool objects")
    names, notes = set(), []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            raise ToolDefinitionError(f'[{i}]: each tool is {{"type": "function", "function": {{...}}}}')
        name = function.get("name")
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ToolDefinitionError(f"[{i}].function.name must be letters, digits, '_' or '-'")
        if name in names:
            raise ToolDefinitionError(f"[{i}].function.name: {name!r} is defined twice")
        names.add(name)
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if renamed := _standard_types(parameters):
            notes.append(f"{name}: read the type names {', '.join(renamed)} as JSON Schema's")
        _check_parameters(parameters, f"[{i}] ({name})")
    return ToolDefinitions(tools, tuple(notes))


def _standard_types(schema) -> list[str]:
    """Replace Python type names in a schema by JSON Schema's, in place; what was replaced."""
    renamed = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "type" and isinstance(value, str) and value in _TYPE_ALIASES:
                schema[key] = _TYPE_ALIASES[value]
                renamed.append(f"{value} -> {schema[key]}")
            else:
                renamed += _standard_types(value)
    elif isinstance(schema, list):
        for item in schema:
            renamed += _standard_types(item)
    return list(dict.fromkeys(renamed))


def _check_parameters(schema: object, where: str) -> None:
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise ToolDefinitionError(f'{where}.function.parameters must be an object schema ({{"type": "object", ...}})')
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = "/".join(str(p) for p in exc.absolute_path)
        raise ToolDefinitionError(f"{where}.function.parameters{'/' + path if path else ''}: {exc.message}") from exc


def tool_names(tools: list[dict]) -> list[str]:
    return [tool["function"]["name"] for tool in tools]
