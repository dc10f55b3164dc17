"""Gradio only: one module per tab. Nothing here imports an engine library."""

from __future__ import annotations

import gradio as gr

from console.core import Console

from . import chat
from .header import engine_header

TITLE = "LMDeploy Console"


def build(console: Console) -> gr.Blocks:
    """The whole app as a Blocks; `app.py` launches it."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}")
        header = gr.Markdown(engine_header(console.state()), elem_id="engine-header")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chat.build_tab(console)
        demo.load(lambda: engine_header(console.state()), outputs=header, api_visibility="private")
    return demo
