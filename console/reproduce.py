"""What the console runs, as commands a user can copy: the running engine without the console, and a
tool round of the Tools tab as a request to any OpenAI-compatible server."""

from __future__ import annotations

import json

from backends import BackendSpec, EngineOptions, hide_credentials


def reproduce(spec: BackendSpec, model_path: str, kind: str, engine: str) -> str:
    """Shell and Python that run what the console runs now (`kind`: the backend that runs,
    which for `--backend auto` is not the spec's kind)."""
    if kind == "remote":
        return _remote(spec, model_path)
    if kind == "cpu":
        return _cpu(model_path, spec.cpu_weights)
    return _lmdeploy(spec, model_path, engine)


def _lmdeploy(spec: BackendSpec, model: str, engine: str) -> str:
    options = spec.engine
    changed = {name: value for name, value in options.changed().items() if name != "engine"}
    served = " ".join([f"--backend {engine}", *(_flag(name, value) for name, value in changed.items())])
    # `lmdeploy chat` has no tool parser: tools are the server's
    chat = " ".join([f"--backend {engine}", *(_flag(n, v) for n, v in changed.items() if n != "tool_parser")])
    config_class = "TurbomindEngineConfig" if engine == "turbomind" else "PytorchEngineConfig"
    arguments = ", ".join(f"{k}={v!r}" for k, v in changed.items() if EngineOptions.option_meta(k)["config"])
    template = (
        f", chat_template_config=ChatTemplateConfig(model_name={options.chat_template!r})"
        if options.chat_template
        else ""
    )
    imports = f"{config_class}, pipeline" + (", ChatTemplateConfig" if template else "")
    return f"""# serve it (OpenAI-compatible, port 23333)
lmdeploy serve api_server {model} {served}

# chat in a terminal
lmdeploy chat {model} {chat}

# Python
from lmdeploy import {imports}

pipe = pipeline({model!r}, backend_config={config_class}({arguments}){template})
print(pipe("What is 2+3?").text)
"""


def _flag(name: str, value) -> str:
    """An option as LMDeploy's command line takes it (a switch for a true boolean)."""
    flag = EngineOptions.option_meta(name)["cli"]
    return flag if value is True else f"{flag} {value}"


def _remote(spec: BackendSpec, model: str) -> str:
    base = hide_credentials(spec.base_url or "")  # a password in the URL is not for every page
    return f"""# the server this console talks to
curl {base}/chat/completions -H "Authorization: Bearer $LMDEPLOY_CONSOLE_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "What is 2+3?"}}]}}'

# Python
from openai import OpenAI

client = OpenAI(base_url={base!r}, api_key="...")
reply = client.chat.completions.create(model={model!r}, messages=[{{"role": "user", "content": "What is 2+3?"}}])
print(reply.choices[0].message.content)
"""


def _cpu(model: str, weights: str) -> str:
    dtype = ', dtype="bfloat16"' if weights == "bf16" else ""
    quantize = {
        "int8-dynamic": "\nfrom torch.ao.quantization import quantize_dynamic\n"
        "chat.model = quantize_dynamic(chat.model, {torch.nn.Linear}, dtype=torch.qint8)\n",
        "int8-weight-only": "\nfrom torchao.quantization import Int8WeightOnlyConfig, quantize_\n"
        "quantize_(chat.model, Int8WeightOnlyConfig())\n",
    }.get(weights, "")
    imports = "import torch\n" if weights == "int8-dynamic" else ""
    return f"""# Python, transformers on the CPU
{imports}from transformers import pipeline

chat = pipeline("text-generation", model={model!r}, device="cpu"{dtype}){quantize}
print(chat([{{"role": "user", "content": "What is 2+3?"}}], max_new_tokens=64)[0]["generated_text"][-1])
"""


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
