"""The Chat tab's generation knobs follow the running preset on every page.

A page opened or reloaded shows the running preset's settings (Gradio would show those of the
preset the console started with), and an open page takes a switch made elsewhere within one header
tick. A page whose user has moved a knob keeps theirs: it is told that its settings differ from the
preset's, with a button to take the preset's.

The header tick carries the running settings as text to a hidden field (`marker`) and the knobs
follow on that field's change alone: any output a tick left alone with `gr.skip()` costs Gradio a new
component and its config, and the knobs are 12 outputs, so following them on every tick of every page
was most of what an idle room cost the console."""

from __future__ import annotations

import gradio as gr

from backends import GenerationParams
from console.core import Console

from .tab_parts import Refresh


class PresetKnobs:
    def __init__(self, console: Console, knobs: list, param_values):
        """`knobs`: the generation knobs (system prompt excluded); `param_values`: GenerationParams ->
        their values, in their order."""
        self._console, self._knobs, self._values = console, knobs, param_values
        self.seen = gr.State(console.state().default_params)  # the preset settings this page last took
        self.touched = gr.State(False)  # its user moved a knob since
        with gr.Row(visible=False) as self._notice_row:
            self._notice = gr.Markdown(elem_id="knobs-differ")
            reset = gr.Button("Use the preset's settings", size="sm", elem_id="knobs-reset")
        for knob in knobs:
            knob.input(lambda: True, outputs=self.touched, api_visibility="private", show_progress="hidden")
        reset.click(self.take_running, outputs=self.outputs, api_visibility="private")
        # "hidden": in the page (its change event fires), out of sight
        self.marker = gr.Textbox(self.running_marker(), visible="hidden", elem_id="running-settings")
        self.marker.change(
            self.follow, inputs=self.inputs, outputs=self.outputs, api_visibility="private", show_progress="hidden"
        )

    @property
    def outputs(self) -> list:
        return [*self._knobs, self.seen, self.touched, self._notice_row, self._notice]

    @property
    def inputs(self) -> list:
        return [self.seen, self.touched]

    def following(self) -> Refresh:
        """The knobs following the running preset, as run after a switch made on this page."""
        return Refresh(self.follow, self.outputs, self.inputs)

    def running_marker(self) -> str:
        """The running preset's generation settings as the text the hidden field carries."""
        return repr(self._console.state().default_params)

    def take_running(self, unless_touched: bool = False) -> tuple:
        """The knobs set to the running preset's settings (left alone where the user moved one)."""
        if unless_touched:
            return (gr.skip(),) * len(self.outputs)
        running = self._console.state().default_params
        return (*self._values(running), running, False, gr.Row(visible=False), "")

    def follow(self, seen: GenerationParams, touched: bool) -> tuple:
        """On a tick: nothing where the preset's settings are those this page took; else take them,
        or, where the user moved a knob, keep theirs and say so."""
        state = self._console.state()
        running = state.default_params
        if running == seen:
            return (gr.skip(),) * len(self.outputs)
        if not touched:
            return self.take_running()
        notice = f"Your generation settings differ from those of the running preset **{state.preset or 'none'}**."
        return (*(gr.skip(),) * len(self._knobs), running, True, gr.Row(visible=True), notice)
