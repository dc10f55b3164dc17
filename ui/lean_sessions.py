"""A page's session starts without Gradio's copy of every component's config.

For each new session Gradio 6 builds the config of every component of the app (about 290 in the
console), inside the HTTP request of the session's first event and on the event loop: ~0.9 ms a
component on the 2-core CI machine, 255 ms a session. It keeps those copies for its deep links (a
page's state as a shareable link), which the console does not offer. Every other request waited
while a page opened or a script made its first call: 64 gradio_client scripts calling /chat at
once queued their joins behind ~16 s of it and most gave up (ReadTimeout; profiled on the CI
machine). A session now starts with none, and gets none for the values its events carry: Gradio
writes each input's and output's latest value into the session's copy of that component's config,
building the copy first where there is none (a Textbox's cost ~1.4 ms under the profiler; four for a
page's first chat, 14% of the console's CPU with 256 first chats at once, H200). It still builds the
config of a component whose props an event changes, as before, when it changes them.
"""

from __future__ import annotations

import types

from gradio.state_holder import SessionState

_copying_every_config = SessionState.__init__


def _without_config_copies(self: SessionState, blocks) -> None:
    # Gradio's __init__ copies the config of each block of `blocks.blocks`: shown none, it copies none,
    # and the rest of the session (its blocks, its State values) is set up as Gradio sets it up
    _copying_every_config(self, types.SimpleNamespace(default_config=blocks.default_config, blocks={}))


def _value_into_kept_config(self: SessionState, key: int, value) -> None:
    # Gradio's own builds a config copy where there is none; those copies serve deep links only
    config = self.config_values.get(key)
    if config and "props" in config:
        config["props"]["value"] = value


def start_sessions_without_config_copies() -> None:
    """From now on, in this process (Gradio's sessions are one class for every app)."""
    SessionState.__init__ = _without_config_copies
    SessionState._update_value_in_config = _value_into_kept_config
