"""A tool round of the Tools tab as a request to any OpenAI-compatible server, to copy."""

from __future__ import annotations

import json


def _request_body(wire_round: dict, model: str) -> dict:
    request = wire_round["request"]
    return {
        "model": model,
        "messages": request["messages"],
        "tools": request["tools"],
        "tool_choice": request["tool_choice"],
        "temperature": request.get("temperature", 0),
    }


def curl_snippet(wire_round: dict, base_url: str = "http://127.0.0.1:23333/v1", model: str = "MODEL") -> str:
    """One round's request as a `curl` against an OpenAI-compatible server."""
    body = json.dumps(_request_body(wire_round, model))
    return f"curl {base_url}/chat/completions -H 'Content-Type: application/json' \\\n  -d '{body}'"


def openai_snippet(wire_round: dict, base_url: str = "http://127.0.0.1:23333/v1", model: str = "MODEL") -> str:
    """One round's request as Python with the `openai` client."""
    arguments = ",\n    ".join(f"{key}={value!r}" for key, value in _request_body(wire_round, model).items())
    return (
        "from openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{base_url}", api_key="YOUR_KEY")\n'
        f"response = client.chat.completions.create(\n    {arguments},\n)\n"
        "print(response.choices[0].message)"
    )
