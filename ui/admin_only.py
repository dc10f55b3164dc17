"""Controls only admins may use are disabled for anyone else when the page opens, with the reason
beside them, instead of refusing after the click (the handlers refuse too: the API has no page)."""

from __future__ import annotations

import gradio as gr

from console.core import Console


class AdminOnly:
    def __init__(self, console: Console):
        self._console = console
        self._controls: list[tuple[gr.components.Component, bool]] = []  # (control, needs the engine to itself)
        self._reasons: list = []

    def controls(self, *components, engine_to_itself: bool = False):
        """Register controls only admins may use (`engine_to_itself`: and only where the engine is not
        shared by a room's processes, e.g. a comparison's); returns the first, for chaining."""
        self._controls.extend((component, engine_to_itself) for component in components)
        return components[0]

    def reason(self) -> gr.Markdown:
        """Where, in the layout being built, a user is told why controls are off for them."""
        note = gr.Markdown(visible=False, elem_classes=["admin-only-reason"])
        self._reasons.append(note)
        return note

    def may(self, request: gr.Request | None, engine_to_itself: bool = False) -> bool:
        access = self._console.access
        shared = engine_to_itself and access.engine_shared is not None
        return access.is_admin(request.username if request else None) and not shared

    @property
    def outputs(self) -> list:
        return [*(control for control, _ in self._controls), *self._reasons]

    def on_load(self, request: gr.Request) -> tuple:
        allowed = [self.may(request, engine_to_itself) for _, engine_to_itself in self._controls]
        if all(allowed):
            return (gr.skip(),) * len(self.outputs)
        reason = self._console.access.what_they_may_do(request.username if request else None)
        return (
            *(gr.skip() if may else gr.update(interactive=False) for may in allowed),
            *(gr.Markdown(f"_{reason}_", visible=True) for _ in self._reasons),
        )
