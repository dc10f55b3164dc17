"""Controls only admins may use are disabled for anyone else when the page opens, with the reason
beside them, instead of refusing after the click (the handlers refuse too: the API has no page)."""

from __future__ import annotations

import gradio as gr

from console.core import Console


class AdminOnly:
    def __init__(self, console: Console):
        self._console = console
        self._controls: list[gr.components.Component] = []
        self._reasons: list = []

    def controls(self, *components):
        """Register controls only admins may use; returns the first, for chaining."""
        self._controls.extend(components)
        return components[0]

    def reason(self) -> gr.Markdown:
        """Where, in the layout being built, a user is told why controls are off for them."""
        note = gr.Markdown(visible=False, elem_classes=["admin-only-reason"])
        self._reasons.append(note)
        return note

    def may(self, request: gr.Request | None) -> bool:
        return self._console.access.is_admin(request.username if request else None)

    @property
    def outputs(self) -> list:
        return [*self._controls, *self._reasons]

    def on_load(self, request: gr.Request) -> tuple:
        if self.may(request):
            return (gr.skip(),) * len(self.outputs)
        reason = self._console.access.what_they_may_do(request.username if request else None)
        return (
            *(gr.update(interactive=False) for _ in self._controls),
            *(gr.Markdown(f"_{reason}_", visible=True) for _ in self._reasons),
        )
