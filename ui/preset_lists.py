"""Lists of preset names that take any name the catalog holds now, not only those of the page's start.

The catalog grows while the console runs (a preset saved on another page, by a Quantize job, by an API
client); Gradio checks a choice against the choices a component was built with, so an API client, whose
session never refreshes them, was refused a preset saved after the console started. The handlers check
each name against the catalog instead, with a refusal that names what is wrong.
"""

from __future__ import annotations

import gradio as gr


def preset_checklist(names: list[str], **kwargs) -> gr.CheckboxGroup:
    """A CheckboxGroup of preset names that passes on any name (not a subclass: Gradio writes a .pyi
    stub beside the module of every component class it meets)."""
    checklist = gr.CheckboxGroup(names, **kwargs)
    checklist.preprocess = lambda payload: list(payload or [])
    return checklist


def preset_dropdown(names: list[str], **kwargs) -> gr.Dropdown:
    return gr.Dropdown(names, allow_custom_value=True, **kwargs)
