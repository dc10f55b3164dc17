"""The running engine as commands a user can copy: the same deployment without the console."""

from __future__ import annotations

from backends import BackendSpec

_FLAGS = (  # EngineOptions field -> LMDeploy CLI flag
    ("model_format", "--model-format"),
    ("quant_policy", "--quant-policy"),
    ("cache_max_entry_count", "--cache-max-entry-count"),
    ("session_len", "--session-len"),
    ("max_batch_size", "--max-batch-size"),
    ("tp", "--tp"),
    ("dtype", "--dtype"),
    ("chat_template", "--chat-template"),
)
_NEUTRAL = {"model_format": "hf", "quant_policy": 0, "tp": 1, "dtype": "auto"}


def reproduce(spec: BackendSpec, model_path: str, kind: str, engine: str) -> str:
    """Shell and Python that run what the console runs now (`kind`: the backend that runs,
    which for `--backend auto` is not the spec's kind)."""
    if kind == "remote":
        return _remote(spec, model_path)
    if kind == "cpu":
        return _cpu(model_path)
    return _lmdeploy(spec, model_path, engine)


def _lmdeploy(spec: BackendSpec, model: str, engine: str) -> str:
    options = spec.engine
    set_fields = {
        name: getattr(options, name)
        for name, _ in _FLAGS
        if getattr(options, name) is not None and _NEUTRAL.get(name) != getattr(options, name)
    }
    flags = " ".join(f"{flag} {set_fields[name]}" for name, flag in _FLAGS if name in set_fields)
    backend = f"--backend {engine}" + (f" {flags}" if flags else "")
    config_class = "TurbomindEngineConfig" if engine == "turbomind" else "PytorchEngineConfig"
    arguments = ", ".join(f"{k}={v!r}" for k, v in set_fields.items() if k != "chat_template")
    template = (
        f", chat_template_config=ChatTemplateConfig(model_name={options.chat_template!r})"
        if options.chat_template
        else ""
    )
    imports = f"{config_class}, pipeline" + (", ChatTemplateConfig" if template else "")
    tools = f" --tool-call-parser {options.tool_parser}" if options.tool_parser else ""
    return f"""# serve it (OpenAI-compatible, port 23333)
lmdeploy serve api_server {model} {backend}{tools}

# chat in a terminal
lmdeploy chat {model} {backend}

# Python
from lmdeploy import {imports}

pipe = pipeline({model!r}, backend_config={config_class}({arguments}){template})
print(pipe("What is 2+3?").text)
"""


def _remote(spec: BackendSpec, model: str) -> str:
    base = spec.base_url
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


def _cpu(model: str) -> str:
    return f"""# Python, transformers on the CPU
from transformers import pipeline

chat = pipeline("text-generation", model={model!r}, device="cpu")
print(chat([{{"role": "user", "content": "What is 2+3?"}}], max_new_tokens=64)[0]["generated_text"][-1])
"""
