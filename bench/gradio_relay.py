"""Gradio's floor with the engine in it: the console's backend behind the barest Gradio chat.

    python -m bench.gradio_relay --backend lmdeploy --engine turbomind --server-port 7870
    (`python -m bench.chat_overhead --relay` starts it as one of its layers)

One event with the console's `/chat` parameters and a Chatbot out: a plain async generator that sends
the message to the backend the console would run (`create_backend`, in this process) and repaints the
reply at the console's pace (`RepaintPacer`), Gradio's own postprocessing left on, served as app.py
serves the console (`app.serve`). No session, no history, no other tab: in `bench.chat_overhead`'s table what this
layer takes above the backend layer is Gradio's, and what the console takes above this layer is its own.
"""

from __future__ import annotations

import asyncio

import gradio as gr

from app import serve
from backends import Backend, ChatRequest, GenerationParams, TextDelta, Usage, create_backend
from bench.cli import backend_parser, backend_spec
from console.chat import RepaintPacer


def build(backend: Backend) -> gr.Blocks:
    pacer = RepaintPacer()

    async def chat(message, system_prompt, temperature, top_p, top_k, max_new_tokens, repetition_penalty, *_rest):
        params = GenerationParams(
            temperature=temperature,
            top_p=top_p,
            top_k=int(top_k),
            max_new_tokens=int(max_new_tokens),
            repetition_penalty=repetition_penalty,
        )
        shown = [{"role": "user", "content": message}]
        reply, tokens, last_paint = "", 0, float("-inf")
        async with pacer.streaming():
            async for delta in backend.stream_chat(ChatRequest([*shown], params)):
                if isinstance(delta, TextDelta):
                    reply += delta.text
                    if (now := asyncio.get_running_loop().time()) - last_paint >= pacer.interval():
                        last_paint = now
                        yield [*shown, {"role": "assistant", "content": reply}]
                elif isinstance(delta, Usage):
                    tokens = delta.completion_tokens
        yield [*shown, {"role": "assistant", "content": f"{reply}\n\n{tokens} tokens"}]

    with gr.Blocks() as demo:
        chatbot = gr.Chatbot()
        knobs = [gr.Textbox(), *(gr.Number() for _ in range(6)), gr.Textbox(), gr.Checkbox()]
        message = gr.Textbox()
        message.submit(chat, [message, *knobs], chatbot, api_name="chat", concurrency_limit=None)
    return demo


def main() -> None:
    parser = backend_parser(__doc__)
    parser.add_argument("--server-port", type=int, required=True)
    args = parser.parse_args()
    backend, _ = asyncio.run(create_backend(backend_spec(args)))
    serve(build(backend), server_port=args.server_port, quiet=True)


if __name__ == "__main__":
    main()
