"""Controls only admins may use are disabled for anyone else, with the reason beside them, instead of
refusing after the click (the handlers refuse too: the API has no page).

Where the access policy gives every page the same answer (everyone an admin, or nobody), the controls
are laid out that way and a page opening changes nothing: each output of the page's opening event costs
Gradio a component built anew, a `gr.skip()` too (8.5 of 27 ms of the console's CPU a page opened, on the
2-core machine). Only where log-ins name admins does a page learn at its opening whether its user is one."""

from __future__ import annotations

import gradio as gr

from console.core import Console


class AdminOnly:
    def __init__(self, console: Console):
        self._console = console
        self._controls: list[gr.components.Component] = []
        self._reasons: list = []
        self._per_user = console.access.admin_depends_on_user()
        self._nobody_may = not self._per_user and not console.access.is_admin(None)

    def controls(self, *components):
        """Register controls only admins may use; returns the first, for chaining."""
        self._controls.extend(components)
        if self._nobody_may:
            for component in components:  # as laid out, before the page's config is made
                component.interactive = False
        return components[0]

    def reason(self) -> gr.Markdown:
        """Where, in the layout being built, a user is told why controls are off for them."""
        if self._nobody_may:
            note = gr.Markdown(self._why(None), elem_classes=["admin-only-reason"])
        else:
            note = gr.Markdown(visible=False, elem_classes=["admin-only-reason"])
        self._reasons.append(note)
        return note

    def may(self, request: gr.Request | None) -> bool:
        return self._console.access.is_admin(request.username if request else None)

    @property
    def outputs(self) -> list:
        """What a page's opening sets: nothing where every page is laid out right already."""
        return [*self._controls, *self._reasons] if self._per_user else []

    def on_load(self, request: gr.Request) -> tuple:
        if not self._per_user:
            return ()
        if self.may(request):
            return (gr.skip(),) * len(self.outputs)
        return (
            *(gr.update(interactive=False) for _ in self._controls),
            *(gr.Markdown(self._why(request.username), visible=True) for _ in self._reasons),
        )

    def _why(self, username: str | None) -> str:
        return f"_{self._console.access.what_they_may_do(username)}_"
