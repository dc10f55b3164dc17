"""Tool definitions as users write them: OpenAI `tools` JSON, checked with errors that point."""

from __future__ import annotations

import json

import jsonschema


class ToolDefinitionError(ValueError):
    """A tools document that cannot be used; the message says what and where."""


def parse_tools(text: str) -> list[dict]:
    """A JSON list of {"type": "function", "function": {"name", "description", "parameters"}}."""
    try:
        tools = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise ToolDefinitionError(f"not JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from exc
    if not isinstance(tools, list):
        raise ToolDefinitionError("the tools must be a JSON list of tool objects")
    names = set()
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
        _check_parameters(function.get("parameters", {"type": "object", "properties": {}}), f"[{i}] ({name})")
    return tools


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
