"""What runs, as commands a user can copy to run it without the console: each backend kind's own."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import BackendInfo
from .cpu_options import KV_BITS, KV_GROUP, RESIDUAL_TOKENS
from .lmdeploy_config import EngineOptions
from .redact import hide_credentials

if TYPE_CHECKING:
    from . import BackendSpec


def lmdeploy_commands(spec: BackendSpec, info: BackendInfo) -> str:
    """`lmdeploy serve`, `lmdeploy chat` and a pipeline with the engine options the console runs."""
    model, engine, options = info.model, info.engine, spec.engine
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


def remote_commands(spec: BackendSpec, info: BackendInfo) -> str:
    """A request to the server the console talks to, with curl and with the `openai` client."""
    model = info.model
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


def cpu_code(spec: BackendSpec, info: BackendInfo) -> str:
    """transformers on the CPU, holding the weights as the cpu backend does."""
    from .embedded_model import embedded_hf_folder

    model, weights = spec.model or str(embedded_hf_folder()), spec.cpu_weights
    dtype = ', dtype="bfloat16"' if weights == "bf16" else ""
    quantize = {
        "int8-dynamic": "\nfrom torch.ao.quantization import quantize_dynamic\n"
        "chat.model = quantize_dynamic(chat.model, {torch.nn.Linear}, dtype=torch.qint8)\n",
        "int8-weight-only": "\nfrom torchao.quantization import Int8WeightOnlyConfig, quantize_\n"
        "quantize_(chat.model, Int8WeightOnlyConfig())\n",
    }.get(weights, "")
    imports = "import torch\n" if weights == "int8-dynamic" else ""
    kv_cache = (
        ""
        if spec.cpu_kv_cache == "full"
        else ',\n    cache_implementation="quantized",  # optimum-quanto; its kernels build on first use\n'
        f'    cache_config={{"backend": "quanto", "nbits": {KV_BITS[spec.cpu_kv_cache]}, '
        f'"q_group_size": {KV_GROUP}, "residual_length": {RESIDUAL_TOKENS}}},\n'
    )
    return f"""# Python, transformers on the CPU
{imports}from transformers import pipeline

chat = pipeline("text-generation", model={model!r}, device="cpu"{dtype}){quantize}
reply = chat([{{"role": "user", "content": "What is 2+3?"}}], max_new_tokens=64{kv_cache})
print(reply[0]["generated_text"][-1])
"""
